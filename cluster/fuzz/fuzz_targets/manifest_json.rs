//! The JSON manifest parser must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let report = strait_cluster::ManifestLoader::parse_str("fuzz.json", text);
        let _ = report.to_snapshot();
    }
});
