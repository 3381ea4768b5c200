//! Crash images of a [`SimFs`]: what a disk could hold after a power cut, and the
//! writes a crash (or a failed fsync) tears.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{CrashImage, DirOp, Inode, Pending, SimFs, State, apply_write, is_root, parent};

const SECTOR: u64 = 512;

/// splitmix64: a tiny deterministic generator for crash images.
pub(super) struct Rng(pub(super) u64);
impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// A write torn by a crash: each sector it touches is new, old or garbage.
pub(super) fn apply_torn(data: &mut Vec<u8>, pos: u64, w: &[u8], rng: &mut Rng) {
    let end = pos + w.len() as u64;
    let mut s = pos;
    while s < end {
        let next = ((s / SECTOR) + 1) * SECTOR;
        let e = next.min(end);
        let piece = &w[(s - pos) as usize..(e - pos) as usize];
        match rng.below(3) {
            0 => apply_write(data, s, piece),
            1 => {
                if data.len() < e as usize {
                    data.resize(e as usize, 0);
                }
            }
            _ => {
                let garbage: Vec<u8> = piece.iter().map(|_| rng.next() as u8).collect();
                apply_write(data, s, &garbage);
            }
        }
        s = e;
    }
}

impl SimFs {
    /// A new file system holding what a disk could contain after a power cut now.
    pub fn crash_image(&self, mode: CrashImage) -> SimFs {
        let st = self.state.lock();
        let mut rng = Rng(match mode {
            CrashImage::Random(seed) => seed,
            _ => 0,
        });
        let mut names = st.durable.clone();
        let mut dirs = st.durable_dirs.clone();
        for ops in st.dir_ops.values() {
            let keep = match mode {
                CrashImage::KeepAll => ops.len(),
                CrashImage::DropAll => 0,
                CrashImage::Random(_) => rng.below(ops.len() as u64 + 1) as usize,
            };
            for op in &ops[..keep] {
                match op {
                    DirOp::Link(p, ino) => {
                        names.insert(p.clone(), *ino);
                    }
                    DirOp::Unlink(p) => {
                        names.remove(p);
                    }
                    DirOp::Rename(from, to, ino) => {
                        names.remove(from);
                        names.insert(to.clone(), *ino);
                    }
                    DirOp::MkDir(d) => {
                        dirs.insert(d.clone());
                    }
                }
            }
        }
        // A directory survives only with every directory above it, and a name only
        // with its directory.
        let dirs: BTreeSet<PathBuf> = dirs
            .iter()
            .filter(|d| {
                d.ancestors()
                    .skip(1)
                    .all(|a| is_root(a) || dirs.contains(a))
            })
            .cloned()
            .collect();
        names.retain(|p, _| {
            let d = parent(p);
            is_root(&d) || dirs.contains(&d)
        });
        let mut inodes = HashMap::new();
        for ino in names.values() {
            if inodes.contains_key(ino) {
                continue;
            }
            let Some(node) = st.inodes.get(ino) else {
                continue;
            };
            let mut data = node.durable.clone();
            for p in &node.pending {
                let choice = match mode {
                    CrashImage::KeepAll => 0,
                    CrashImage::DropAll => 1,
                    CrashImage::Random(_) => rng.below(3),
                };
                match (p, choice) {
                    (_, 1) => {}
                    (Pending::SetLen(len), _) => data.resize(*len as usize, 0),
                    (Pending::Write { pos, data: w }, 0) => apply_write(&mut data, *pos, w),
                    (Pending::Write { pos, data: w }, _) => {
                        apply_torn(&mut data, *pos, w, &mut rng)
                    }
                }
            }
            inodes.insert(
                *ino,
                Inode {
                    live: data.clone(),
                    durable: data,
                    pending: Vec::new(),
                    diverged: false,
                },
            );
        }
        let state = State {
            next_ino: st.next_ino,
            inodes,
            strict_dirs: st.strict_dirs,
            durable_dirs: dirs.clone(),
            dirs,
            live: names.clone(),
            durable: names,
            ..State::default()
        };
        SimFs {
            state: Arc::new(Mutex::new(state)),
        }
    }
}
