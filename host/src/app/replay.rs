//! `net-gazer replay FILE...`: the live pipeline over capture files, with a
//! progress bar on a terminal and a summary at the end.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::capture::file::CaptureFile;
use crate::cli::ReplayArgs;
use crate::config::Config;
use crate::event::Stats;
use crate::output::Backpressure;
use crate::pipeline::ReplayFilter;
use crate::track::LocalNetworks;

/// What a replay did.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub files: usize,
    /// Files that ended early, and packets skipped, by error kind.
    pub file_errors: BTreeMap<&'static str, u64>,
    pub filtered: u64,
    pub elapsed_s: f64,
    pub packets_per_s: f64,
    pub events: u64,
    /// Per plugin: calls, drops, tags, failures.
    pub plugins: BTreeMap<String, crate::plugin::metrics::Snapshot>,
    #[serde(flatten)]
    pub stats: Stats,
}

pub fn run(config: Config, args: &ReplayArgs) -> anyhow::Result<()> {
    let local = config.local_networks().unwrap_or_else(LocalNetworks::private_ranges);
    let filter = match config
        .capture
        .filter
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        Some(op) => Some(ReplayFilter::new(crate::capture::filter::expression(
            config.capture.mode,
            config.capture.client_rtt,
            Some(op),
        ))?),
        None => None,
    };
    // Open every file first: a typo in the last name should not cost a
    // long replay of the others.
    let mut files = args
        .files
        .iter()
        .map(|p| CaptureFile::open(p))
        .collect::<Result<Vec<_>, _>>()?;

    let plugins = super::start_plugins(&config)?;
    let plugin_metrics = plugins.metrics;
    let (mut pipeline, output_thread) =
        super::start_pipeline(&config, local, filter, Backpressure::Wait, plugins.stage)?;

    let total_bytes: u64 = files.iter().filter_map(CaptureFile::size).sum();
    let bar = progress_bar(total_bytes, args.no_progress);
    let started = Instant::now();
    let mut file_errors: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut done_bytes = 0u64;
    'files: for file in &mut files {
        let path = file.path().to_path_buf();
        let mut records = file.records();
        let mut n = 0u32;
        let mut skipped = false;
        while let Some(record) = records.next_packet() {
            // `net-gazer replay big.pcap | head`: the reader is gone
            // (looked at every 1024 packets).
            if n.is_multiple_of(1024) && crate::output::jsonl::stdout_closed() {
                tracing::info!(packets = pipeline.packets(), "standard output closed: the replay stops");
                break 'files;
            }
            match record {
                Ok(pkt) => pipeline.handle_packet(&pkt),
                Err(e) if e.is_fatal() => {
                    tracing::warn!(file = %path.display(), error = %e, "capture file damaged; the rest of it is skipped");
                    *file_errors.entry(e.kind()).or_default() += 1;
                }
                Err(e) => {
                    // Logged once per file, counted every time.
                    if !std::mem::replace(&mut skipped, true) {
                        tracing::warn!(file = %path.display(), error = %e, "packet skipped (later ones only counted)");
                    }
                    *file_errors.entry(e.kind()).or_default() += 1;
                }
            }
            n = n.wrapping_add(1);
            if n.is_multiple_of(65_536) {
                if let Some(b) = &bar {
                    b.set_position(done_bytes + records.position());
                }
            }
        }
        done_bytes += records.position();
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let elapsed = started.elapsed();
    let filtered = pipeline.filtered();
    let end = pipeline.last_ts();
    let deadline = Instant::now() + config.output.stop_timeout;
    let queued = pipeline.queued();
    let (queue, stats) = pipeline.finish(end, None, deadline);
    drop(queue);
    let report = output_thread.join_until(deadline, &queued);
    super::report_stop(&stats, &report, config.output.stop_timeout);
    let summary = Summary {
        files: files.len(),
        file_errors,
        filtered,
        elapsed_s: elapsed.as_secs_f64(),
        packets_per_s: stats.packets as f64 / elapsed.as_secs_f64().max(1e-9),
        events: report.written,
        plugins: plugin_metrics
            .snapshot()
            .into_iter()
            .map(|(name, m)| (name, m.snapshot()))
            .collect(),
        stats,
    };
    if crate::output::jsonl::stdout_closed() {
        // Quietly, as `cat big | head` does: no summary, status 0.
        return Ok(());
    }
    if args.summary_json {
        eprintln!("{}", serde_json::to_string(&summary)?);
    } else {
        eprint!("{}", render(&summary, elapsed));
    }
    if let Some(e) = report.errors.first() {
        anyhow::bail!("output failed: {e}");
    }
    Ok(())
}

fn progress_bar(total: u64, disabled: bool) -> Option<indicatif::ProgressBar> {
    // Only worth it on a terminal and for files that take a moment.
    if disabled || !std::io::stderr().is_terminal() || total < 16 << 20 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    Some(bar)
}

fn render(s: &Summary, elapsed: Duration) -> String {
    let st = &s.stats;
    let mut out = String::new();
    let kv = |m: &BTreeMap<&'static str, u64>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        }
    };
    out.push_str(&format!(
        "replayed {} file(s): {} packets, {} TCP segments in {:.3} s ({:.0} packets/s)\n",
        s.files,
        st.packets,
        st.segments,
        elapsed.as_secs_f64(),
        s.packets_per_s
    ));
    let attempts: u64 = st.attempts.values().sum();
    out.push_str(&format!("  attempts:      {attempts} ({})\n", kv(&st.attempts)));
    out.push_str(&format!(
        "  decode errors: {} ({})\n",
        st.decode_errors.values().sum::<u64>(),
        kv(&st.decode_errors)
    ));
    out.push_str(&format!("  not tracked:   {}\n", kv(&st.ignored)));
    if !s.file_errors.is_empty() {
        out.push_str(&format!("  file errors:   {}\n", kv(&s.file_errors)));
    }
    if s.filtered > 0 {
        out.push_str(&format!("  filtered out:  {}\n", s.filtered));
    }
    out.push_str(&format!(
        "  duplicates {}, SYN-ACKs without SYN {}, flows {}, scans {}, evictions {}, peak table {}\n",
        st.duplicates, st.synack_without_syn, st.flows, st.scans, st.evictions, st.table_peak
    ));
    out.push_str(&format!("  events written: {}\n", s.events));
    for (name, p) in &s.plugins {
        out.push_str(&format!(
            "  plugin {name}: {} events, {} dropped, {} tagged, {} errors ({} traps, {} timeouts, {} out of memory, {} bad results), {} ns/event\n",
            p.events,
            p.dropped,
            p.tagged,
            p.errors,
            p.traps,
            p.timeouts,
            p.out_of_memory,
            p.bad_results,
            p.busy_ns.checked_div(p.events).unwrap_or(0),
        ));
        if p.export_dropped > 0 {
            out.push_str(&format!(
                "    not exported (queue full or stop): {}\n",
                p.export_dropped
            ));
        }
        // The plugin's own counters and gauges.
        if !p.custom.is_empty() {
            let custom: Vec<String> = p.custom.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("    custom: {}\n", custom.join(" ")));
        }
    }
    out
}
