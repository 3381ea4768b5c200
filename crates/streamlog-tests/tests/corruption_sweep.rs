//! Test kind 6 (ARCHITECTURE.md): damage to flushed data is always detected, index damage never
//! yields wrong data.
mod common;

use std::path::PathBuf;

use common::*;
use streamlog::format::Compression;
use streamlog::fs::{CrashImage, SimFs};

/// A flushed log of three segments: closed cleanly, or cut by a crash right after a flush.
fn setup(clean: bool) -> (SimFs, Vec<String>) {
    let (fs, log) = small_sim_log();
    for tag in 0..20 {
        log.append(&mut batch(tag, 2, Compression::ALL[tag as usize % 5]))
            .unwrap();
    }
    log.flush().unwrap();
    let values: Vec<String> = read_values(&log).unwrap();
    assert!(log.segments().len() >= 3, "{:?}", log.segments());
    if clean {
        log.close().unwrap();
        (fs, values)
    } else {
        std::mem::forget(log);
        (fs.crash_image(CrashImage::DropAll), values)
    }
}

fn files(fs: &SimFs, suffix: &str) -> Vec<(PathBuf, Vec<u8>)> {
    fs.files(&dir())
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().ends_with(suffix))
        .map(|(p, _)| {
            let data = fs.read_file(&p).unwrap();
            (p, data)
        })
        .collect()
}

/// Opens a damaged image and reads everything: Ok(values) or the error.
fn open_and_read(fs: &SimFs) -> streamlog::Result<Vec<String>> {
    let log = open_sim(fs, small_config())?;
    read_values(&log)
}

fn copy(fs: &SimFs) -> SimFs {
    fs.crash_image(CrashImage::KeepAll)
}

/// Writes each damaged version of every flushed `.log` file that `damage` returns (with
/// what it did), for both kinds of [`setup`], into a copy of the image, and asserts that
/// opening and reading that copy fails with a corruption error. Returns how many it
/// checked.
fn assert_log_damage_detected(damage: impl Fn(&[u8]) -> Vec<(String, Vec<u8>)>) -> usize {
    let mut checked = 0;
    for clean in [true, false] {
        let (fs, _) = setup(clean);
        for (path, data) in files(&fs, ".log") {
            for (what, bad) in damage(&data) {
                let img = copy(&fs);
                img.write_file(&path, bad);
                let r = open_and_read(&img);
                assert!(
                    r.as_ref().is_err_and(|e| e.is_corruption()),
                    "clean={clean}: {what} of {} gave {r:?}",
                    path.display()
                );
                checked += 1;
            }
        }
    }
    checked
}

#[test]
fn every_bit_flip_in_flushed_segment_data_is_detected() {
    let checked = assert_log_damage_detected(|data| {
        (0..data.len())
            .map(|i| {
                let mut bad = data.to_vec();
                bad[i] ^= 1 << (i % 8);
                (format!("a flip at byte {i}"), bad)
            })
            .collect()
    });
    println!("bit flips detected: {checked} of {checked}");
}

#[test]
fn truncating_a_flushed_segment_at_every_byte_is_detected() {
    let checked = assert_log_damage_detected(|data| {
        (0..data.len())
            .map(|len| (format!("a cut to {len} bytes"), data[..len].to_vec()))
            .collect()
    });
    // A whole segment file lost.
    for clean in [true, false] {
        let (fs, _) = setup(clean);
        for (path, _) in files(&fs, ".log") {
            let img = copy(&fs);
            img.delete_file(&path);
            assert!(
                open_and_read(&img).is_err(),
                "clean={clean}: losing {} went unnoticed",
                path.display()
            );
        }
    }
    println!("truncations detected: {checked} of {checked}");
}

#[test]
fn zeroed_sectors_are_detected() {
    assert_log_damage_detected(|data| {
        (0..data.len())
            .step_by(512)
            .map(|start| {
                let mut bad = data.to_vec();
                let end = (start + 4096).min(bad.len());
                bad[start..end].fill(0);
                (format!("zeroing {start}.."), bad)
            })
            .collect()
    });
}

#[test]
fn index_damage_never_returns_wrong_data() {
    let mut rebuilt_at_open = 0;
    let mut total = 0;
    for clean in [true, false] {
        let (fs, values) = setup(clean);
        for suffix in [".index", ".timeindex"] {
            for (path, data) in files(&fs, suffix) {
                let mut cases: Vec<Vec<u8>> = (0..data.len())
                    .map(|i| {
                        let mut bad = data.clone();
                        bad[i] ^= 1 << (i % 8);
                        bad
                    })
                    .collect();
                cases.push(Vec::new());
                cases.push(vec![0; data.len() + 8]);
                cases.push(vec![0xff; 24]);
                for bad in cases {
                    total += 1;
                    let img = copy(&fs);
                    img.write_file(&path, bad);
                    let log = open_sim(&img, small_config()).unwrap();
                    rebuilt_at_open += log.recovery_report().indexes_rebuilt;
                    let got: Vec<String> = read_values(&log).unwrap();
                    assert_eq!(got, values, "clean={clean}: damaged {}", path.display());
                    let obs = Observed {
                        appended: values.clone(),
                        acked: values.len() as i64,
                        closed_cleanly: true,
                    };
                    check_invariants(&log, &obs)
                        .unwrap_or_else(|v| panic!("clean={clean}: {}: {v}", path.display()));
                }
            }
        }
    }
    println!(
        "index damage: {total} cases, all reads correct, {rebuilt_at_open} indexes rebuilt at open"
    );
}

/// From a review: a read that finds a sealed segment's index damaged rebuilds it and
/// writes it anew; a failed fsync of it only logged "rebuilt in memory only" and the
/// log took writes on ("a failed fsync poisons"). Every index entry flipped in turn,
/// with an EIO at each operation of the read that meets it.
#[test]
fn a_failed_fsync_of_an_index_a_read_rebuilt_poisons_the_log() {
    let (fs, values) = setup(true);
    let mut struck = 0;
    for (path, data) in files(&fs, ".index") {
        for i in (0..data.len()).step_by(8) {
            for k in 1..40 {
                let img = copy(&fs);
                let mut bad = data.clone();
                bad[i] ^= 0x10;
                img.write_file(&path, bad);
                let log = open_sim(&img, small_config()).unwrap();
                img.inject(streamlog::fs::Fault::Eio, img.op_count() + k, false);
                let read = read_values(&log);
                img.clear_faults();
                if img.failed_sync_count() == 0 {
                    if let Ok(got) = read {
                        assert_eq!(got, values, "{}: entry byte {i}", path.display());
                    }
                    continue;
                }
                struck += 1;
                assert!(
                    log.poison_reason().is_some(),
                    "{}: entry byte {i}, EIO at {k}: an fsync failed and the log takes writes",
                    path.display()
                );
            }
        }
    }
    assert!(struck > 0, "no fault struck an index's fsync");
}
