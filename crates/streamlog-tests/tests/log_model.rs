//! Test kind 3 (ARCHITECTURE.md): the log against a `Vec` model under random sequences of append,
//! read, roll, flush, truncate, close+reopen and crash+reopen.
mod common;

use common::*;
use proptest::prelude::*;
use streamlog::format::Compression;
use streamlog::fs::{CrashImage, SimFs};
use streamlog::log::Log;

#[derive(Debug, Clone)]
enum Op {
    Append { n: usize, codec: usize },
    Read { at: f64, max_bytes: usize },
    Roll,
    Flush,
    Truncate { at: f64 },
    Reopen,
    Crash { mode: u8, seed: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0usize..5).prop_map(|(n, codec)| Op::Append { n, codec }),
        3 => (0.0f64..1.0, 1usize..3000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => Just(Op::Roll),
        2 => Just(Op::Flush),
        1 => (0.0f64..1.0).prop_map(|at| Op::Truncate { at }),
        1 => Just(Op::Reopen),
        1 => (0u8..3, any::<u64>()).prop_map(|(mode, seed)| Op::Crash { mode, seed }),
    ]
}

struct Model {
    values: Vec<String>,
    /// Offsets below this were covered by a completed flush.
    durable: usize,
}

fn check_all(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_end_offset() as usize, model.values.len());
    let got: Vec<String> = read_values(log).unwrap();
    prop_assert_eq!(&got, &model.values);
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut fs = SimFs::new();
    let mut log = open_sim(&fs, small_config()).unwrap();
    let mut model = Model {
        values: Vec::new(),
        durable: 0,
    };
    let mut tag = 0u64;
    for op in ops {
        match op {
            Op::Append { n, codec } => {
                tag += 1;
                let info = log
                    .append(&mut batch(tag, n, Compression::ALL[codec]))
                    .unwrap();
                prop_assert_eq!(info.base_offset as usize, model.values.len());
                model.values.extend((0..n).map(|i| value(tag, i)));
            }
            Op::Read { at, max_bytes } => {
                let offset = (at * model.values.len() as f64) as i64;
                let recs = log.read_records(offset, max_bytes).unwrap();
                if (offset as usize) < model.values.len() {
                    prop_assert!(!recs.is_empty(), "read at {} returned nothing", offset);
                    prop_assert_eq!(recs[0].offset, offset);
                } else {
                    prop_assert!(recs.is_empty());
                }
                for r in recs {
                    prop_assert_eq!(
                        r.value.as_deref(),
                        Some(model.values[r.offset as usize].as_bytes())
                    );
                }
            }
            Op::Roll => log.roll().unwrap(),
            Op::Flush => {
                prop_assert_eq!(log.flush().unwrap() as usize, model.values.len());
                model.durable = model.values.len();
            }
            Op::Truncate { at } => {
                let offset = (at * model.values.len() as f64) as i64;
                let end = log.truncate_to(offset).unwrap();
                prop_assert!(end <= offset || offset as usize >= model.values.len());
                model.values.truncate(end as usize);
                model.durable = model.values.len();
                prop_assert_eq!(log.log_end_offset(), end);
            }
            Op::Reopen => {
                log.close().unwrap();
                log = open_sim(&fs, small_config()).unwrap();
                prop_assert!(log.recovery_report().clean_shutdown);
                model.durable = model.values.len();
            }
            Op::Crash { mode, seed } => {
                std::mem::forget(log);
                let mode = [
                    CrashImage::KeepAll,
                    CrashImage::DropAll,
                    CrashImage::Random(seed),
                ][mode as usize];
                fs = fs.crash_image(mode);
                log = open_sim(&fs, small_config()).unwrap();
                let end = log.log_end_offset() as usize;
                prop_assert!(
                    end >= model.durable,
                    "lost flushed records: end {} < durable {}",
                    end,
                    model.durable
                );
                prop_assert!(end <= model.values.len());
                model.values.truncate(end);
                model.durable = end;
            }
        }
        prop_assert!(log.durable_offset() as usize >= model.durable.min(model.values.len()));
    }
    check_all(&log, &model)?;
    log.close().unwrap();
    let log = open_sim(&fs, small_config()).unwrap();
    check_all(&log, &model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_a_vec_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
