#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| net_gazer_collector::fuzzing::stored_values(data));
