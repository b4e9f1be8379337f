//! The engine in simulated time against a simulated path.

use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::trace::wire::AnswerKind;

const SRC: [u8; 4] = [10, 0, 0, 1];
const DST: [u8; 4] = [192, 0, 2, 9];

fn ms(n: i64) -> Timestamp {
    Timestamp::from_micros(1_000_000_000 + n * 1000)
}

fn router(n: u8) -> IpAddr {
    IpAddr::from([198, 51, 100, n])
}

fn request(protocol: Protocol) -> Request {
    Request {
        src: IpAddr::from(SRC),
        dst: IpAddr::from(DST),
        protocol,
        port: None,
        handshake_id: Some(7),
        hops_hint: None,
    }
}

/// A path of `hops - 1` routers then the destination; `silent` routers do
/// not answer. What answers the probe `t`, if anything.
fn answer(t: &Transmit, hops: u8, silent: &[u8]) -> Option<Answer> {
    let signature = wire::signature_of(t.dst, t.protocol, &t.bytes)?;
    if silent.contains(&t.ttl) {
        return None;
    }
    if t.ttl < hops {
        return Some(Answer {
            from: router(t.ttl),
            kind: AnswerKind::TimeExceeded,
            signature,
            icmp: Some((11, 0)),
            quoted_ttl: Some(1),
        });
    }
    let (kind, icmp) = match t.protocol {
        Protocol::Icmp => (AnswerKind::EchoReply, Some((0, 0))),
        Protocol::Udp => (AnswerKind::Unreachable, Some((3, 3))),
        Protocol::Tcp => (AnswerKind::TcpAnswer, None),
    };
    Some(Answer {
        from: t.dst,
        kind,
        signature,
        icmp,
        quoted_ttl: (t.protocol == Protocol::Udp).then_some(t.ttl - hops + 1),
    })
}

fn drain(e: &mut Engine, now: Timestamp) -> Vec<Transmit> {
    std::iter::from_fn(|| e.poll_transmit(now)).collect()
}

/// Runs the engine against the simulated path until every trace finished:
/// probes the path answers come back `rtt_ms` later; silent ones time out.
/// `answers(t)`: what answers probe `t`.
fn simulate(e: &mut Engine, rtt_ms: i64, answers: impl Fn(&Transmit) -> Option<Answer>) -> Vec<TraceResult> {
    let mut now = ms(0);
    let mut pending: Vec<(Timestamp, Answer)> = Vec::new();
    let mut results = Vec::new();
    while e.busy() > 0 || !pending.is_empty() {
        for t in drain(e, now) {
            if let Some(a) = answers(&t) {
                pending.push((now + Duration::from_millis(rtt_ms as u64), a));
            }
        }
        pending.sort_by_key(|p| p.0);
        let next = [pending.first().map(|p| p.0), e.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { break };
        now = next.max(now);
        while pending.first().is_some_and(|p| p.0 <= now) {
            let (at, a) = pending.remove(0);
            e.handle_answer(&a, at);
        }
        e.handle_timeout(now);
        results.extend(std::iter::from_fn(|| e.poll_result()));
        assert!(now < ms(60_000), "the simulation does not end");
    }
    results
}

#[test]
fn every_ttl_leaves_at_once_and_a_responsive_path_ends_without_waiting() {
    for protocol in [Protocol::Icmp, Protocol::Udp, Protocol::Tcp] {
        let mut e = Engine::new(Settings::default(), 42);
        e.start(request(protocol), ms(0));
        let first = drain(&mut e, ms(0));
        assert_eq!(
            first.len(),
            30 + 2 * 16,
            "every first attempt, the retries of the assumed 16 hops"
        );
        // Answers arrive in reverse order (reordering), 2 ms later.
        for t in first.iter().rev() {
            if let Some(a) = answer(t, 6, &[]) {
                e.handle_answer(&a, ms(2));
            }
        }
        assert!(drain(&mut e, ms(2)).is_empty(), "nothing beyond the destination");
        let r = e.poll_result().expect("finished in one round trip");
        assert!(r.reached, "{protocol:?}");
        assert_eq!(r.finished, ms(2));
        let path: Vec<_> = r.path();
        let want: Vec<_> = (1..6)
            .map(|n| Some(router(n)))
            .chain([Some(IpAddr::from(DST))])
            .collect();
        assert_eq!(path, want, "{protocol:?}");
        assert!(r.hops.iter().all(|h| h.sent == 3 && h.received == 3));
        assert_eq!(r.hops[0].rtt_avg_us, Some(2000.0), "every answer took 2 ms");
        assert_eq!(r.request.handshake_id, Some(7));
        // Answers of the probes beyond the destination change nothing.
        assert!(e.poll_result().is_none());
        e.handle_timeout(ms(5000));
        assert!(e.poll_result().is_none());
    }
}

#[test]
fn a_silent_router_is_a_missing_hop_not_the_end() {
    let mut e = Engine::new(Settings::default(), 1);
    e.start(request(Protocol::Udp), ms(0));
    let [r] = <[TraceResult; 1]>::try_from(simulate(&mut e, 1, |t| answer(t, 6, &[3]))).unwrap();
    // Hop 3's retries left with its first attempt: the trace ended when
    // they timed out, one timeout in all.
    assert_eq!(r.finished, ms(1000));
    assert!(r.reached);
    assert_eq!(r.hops.len(), 6);
    assert_eq!((r.hops[2].addr, r.hops[2].sent, r.hops[2].received), (None, 3, 0));
    assert_eq!(r.hops[2].loss_percent(), 100.0);
    assert_eq!(r.hops[5].quoted_ttl, None, "quoted TTL 1 tells nothing");
}

#[test]
fn an_unreachable_destination_lists_hops_up_to_the_last_answer() {
    let mut e = Engine::new(Settings::default(), 1);
    e.start(request(Protocol::Icmp), ms(0));
    // Only the first four routers answer; nothing beyond.
    let results = simulate(&mut e, 1, |t| if t.ttl <= 4 { answer(t, 30, &[2]) } else { None });
    let r = &results[0];
    assert!(!r.reached);
    assert_eq!(r.hops[1].sent, 3, "a silent hop is retried");
    assert_eq!(r.path(), vec![Some(router(1)), None, Some(router(3)), Some(router(4))]);
}

#[test]
fn retries_wait_beyond_the_hop_count_the_handshake_suggested() {
    let mut e = Engine::new(Settings::default(), 4);
    e.start(
        Request {
            hops_hint: Some(3),
            ..request(Protocol::Tcp)
        },
        ms(0),
    );
    let first = drain(&mut e, ms(0));
    // Every first attempt, and the retries of TTLs 1 to 4 (hint + 1).
    assert_eq!(first.len(), 30 + 2 * 4);
    // The destination is 6 hops away: TTLs 5 and 6 are on the path once
    // their first attempts are answered, and only then retried.
    for t in &first {
        if let Some(a) = answer(t, 6, &[]) {
            e.handle_answer(&a, ms(3));
        }
    }
    let retries = drain(&mut e, ms(3));
    let mut ttls: Vec<u8> = retries.iter().map(|t| t.ttl).collect();
    ttls.sort();
    assert_eq!(ttls, [5, 5, 6, 6]);
    for t in &retries {
        e.handle_answer(&answer(t, 6, &[]).unwrap(), ms(6));
    }
    let r = e.poll_result().expect("finished");
    assert!(r.reached && r.hops.iter().all(|h| h.received == 3));
}

#[test]
fn duplicate_and_late_answers_are_counted_not_used() {
    let mut e = Engine::new(Settings::default(), 3);
    e.start(request(Protocol::Tcp), ms(0));
    let sent = drain(&mut e, ms(0));
    let first = answer(&sent[0], 4, &[]).unwrap();
    e.handle_answer(&first, ms(1));
    e.handle_answer(&first, ms(2)); // duplicate
    assert_eq!(e.counters().unmatched, 1);
    // Everything else, retries included, answers after its timeout.
    let mut late = sent[1..].to_vec();
    let mut now = ms(1);
    let r = loop {
        late.extend(drain(&mut e, now));
        now = e.poll_timeout().expect("work is pending");
        e.handle_timeout(now);
        if let Some(r) = e.poll_result() {
            break r;
        }
    };
    for t in &late {
        if let Some(a) = answer(t, 4, &[]) {
            e.handle_answer(&a, now + Duration::from_secs(5));
        }
    }
    assert_eq!(e.counters().unmatched, 1 + late.len() as u64);
    assert_eq!((r.hops[0].sent, r.hops[0].received), (3, 1));
    assert!(!r.reached, "the destination's answers came too late");
    assert_eq!(r.hops.len(), 1);
    assert!(e.poll_result().is_none());
}

#[test]
fn the_budget_holds_and_probes_beyond_the_destination_are_not_sent() {
    let settings = Settings {
        rate: 100,
        burst: 1,
        ..Settings::default()
    };
    let mut e = Engine::new(settings, 9);
    e.start(request(Protocol::Icmp), ms(0));
    let mut sent = Vec::new();
    let mut now = ms(0);
    while e.poll_result().is_none() {
        for t in drain(&mut e, now) {
            // Answered at once: the destination is 5 hops away.
            if let Some(a) = answer(&t, 5, &[]) {
                e.handle_answer(&a, now);
            }
            sent.push((now, t.ttl));
        }
        now = e.poll_timeout().expect("work is pending").max(now);
        e.handle_timeout(now);
    }
    // One probe per 10 ms, never faster.
    for w in sent.windows(2) {
        assert!(w[1].0 - w[0].0 >= Duration::from_millis(10), "{:?}", w);
    }
    // First round TTL 1..5 (5 answers the destination), then only TTLs up to 5.
    let ttls: Vec<u8> = sent.iter().map(|s| s.1).collect();
    assert_eq!(ttls, [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5]);
}

#[test]
fn traces_beyond_the_concurrency_limit_wait_their_turn() {
    let settings = Settings {
        max_concurrent: 2,
        max_waiting: 2,
        max_ttl: 4,
        probes_per_hop: 1,
        ..Settings::default()
    };
    let mut e = Engine::new(settings, 5);
    let mut accepted = 0;
    for i in 0..5u8 {
        let mut r = request(Protocol::Icmp);
        r.dst = IpAddr::from([192, 0, 2, i + 1]);
        accepted += e.start(r, ms(0)) as u32;
    }
    assert_eq!(accepted, 4);
    assert_eq!(e.counters().refused, 1);
    let first = drain(&mut e, ms(0));
    let dsts: std::collections::BTreeSet<_> = first.iter().map(|t| t.dst).collect();
    assert_eq!(dsts.len(), 2, "two traces run at once");
    let mut done = 0;
    let mut now = ms(0);
    for round in 0..10 {
        now = ms(round * 10);
        for t in drain(&mut e, now)
            .into_iter()
            .chain(if round == 0 { first.clone() } else { vec![] })
        {
            if let Some(a) = answer(&t, 2, &[]) {
                e.handle_answer(&a, now);
            }
        }
        while e.poll_result().is_some() {
            done += 1;
        }
    }
    assert_eq!(done, 4, "every accepted trace ran ({now:?})");
    assert_eq!(e.busy(), 0);
}

#[test]
fn two_traces_to_one_destination_run_side_by_side() {
    // Two traces to the same destination at once get different identifiers:
    // every answer finds its own trace.
    let settings = Settings {
        burst: 200,
        ..Settings::default()
    };
    let mut e = Engine::new(settings, 11);
    e.start(request(Protocol::Udp), ms(0));
    e.start(request(Protocol::Udp), ms(0));
    assert_eq!(
        drain(&mut e, ms(0)).len(),
        124,
        "both traces' first round, within the burst"
    );
    let mut e = Engine::new(
        Settings {
            burst: 200,
            ..Settings::default()
        },
        11,
    );
    e.start(request(Protocol::Udp), ms(0));
    e.start(request(Protocol::Udp), ms(0));
    let [a, b] = <[TraceResult; 2]>::try_from(simulate(&mut e, 1, |t| answer(t, 3, &[]))).unwrap();
    assert!(a.reached && b.reached);
    assert_eq!(a.hops.len(), 3);
    assert!(a.hops.iter().chain(&b.hops).all(|h| h.received == 3));
}
