#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| net_gazer::fuzzing::sensor_config(data));
