//! The assignors: how a group spreads the partitions of its members' topics over
//! them (Kafka's range, round-robin and cooperative-sticky).

use std::collections::{BTreeMap, BTreeSet};

use super::Assignor;
use crate::topic::TopicPartition;

/// Assigns every partition of `counts` to exactly one member subscribed to its topic
/// (partitions of topics nobody subscribes to are left out). `members` maps a member id
/// to (subscription, current assignment); the current assignment matters only to the
/// sticky assignor. A negative partition count counts as none.
pub fn assign(
    assignor: Assignor,
    members: &BTreeMap<String, (BTreeSet<String>, BTreeSet<TopicPartition>)>,
    counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = members
        .keys()
        .map(|id| (id.clone(), BTreeSet::new()))
        .collect();
    let eligible = |topic: &str| -> Vec<&String> {
        members
            .iter()
            .filter(|(_, (subs, _))| subs.contains(topic))
            .map(|(id, _)| id)
            .collect()
    };
    match assignor {
        Assignor::Range => {
            for (topic, &n) in counts {
                let ms = eligible(topic);
                if ms.is_empty() {
                    continue;
                }
                // A negative count (from a caller of this public function) is none.
                let n = usize::try_from(n).unwrap_or(0);
                let (per, extra) = (n / ms.len(), n % ms.len());
                let mut p = 0;
                for (i, id) in ms.iter().enumerate() {
                    let len = per + usize::from(i < extra);
                    for q in p..p + len {
                        out.get_mut(*id)
                            .expect("member")
                            .insert(TopicPartition::new(topic.clone(), q as i32));
                    }
                    p += len;
                }
            }
        }
        Assignor::RoundRobin => {
            let ids: Vec<&String> = members.keys().collect();
            let mut next = 0usize;
            for (topic, &n) in counts {
                if eligible(topic).is_empty() {
                    continue;
                }
                for p in 0..n {
                    while !members[ids[next % ids.len()]].0.contains(topic) {
                        next += 1;
                    }
                    out.get_mut(ids[next % ids.len()])
                        .expect("member")
                        .insert(TopicPartition::new(topic.clone(), p));
                    next += 1;
                }
            }
        }
        Assignor::CooperativeSticky => {
            let all: Vec<TopicPartition> = counts
                .iter()
                .filter(|(t, _)| !eligible(t).is_empty())
                .flat_map(|(t, &n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
                .collect();
            let m = members.len().max(1);
            let base = all.len() / m;
            let mut extra_slots = all.len() % m;
            let valid = |id: &String, tp: &TopicPartition| {
                members[id].0.contains(tp.topic())
                    && counts
                        .get(tp.topic())
                        .is_some_and(|&n| (0..n).contains(&tp.partition()))
            };
            let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
            // Keep up to `base` current partitions each, then one more while slots last.
            for (id, (_, current)) in members {
                let mine = out.get_mut(id).expect("member");
                for tp in current.iter().filter(|tp| valid(id, tp)) {
                    if mine.len() == base {
                        break;
                    }
                    // (Current assignments never overlap; should they, one owner keeps it.)
                    if taken.insert(tp.clone()) {
                        mine.insert(tp.clone());
                    }
                }
            }
            for (id, (_, current)) in members {
                if extra_slots == 0 {
                    break;
                }
                if let Some(tp) = current
                    .iter()
                    .find(|tp| valid(id, tp) && !taken.contains(*tp))
                    && out[id].len() == base
                {
                    taken.insert(tp.clone());
                    out.get_mut(id).expect("member").insert(tp.clone());
                    extra_slots -= 1;
                }
            }
            // The rest to the least-loaded eligible member, or back to its owner while
            // it holds at most one more than that: `base` counts every member, also
            // those subscribed to none of these topics, so owners may have let go of
            // partitions none of the others can even take (`balance` evens out
            // anything left uneven).
            for tp in all {
                if taken.contains(&tp) {
                    continue;
                }
                let candidates = eligible(tp.topic());
                let lightest = candidates
                    .iter()
                    .copied()
                    .min_by_key(|id| out[*id].len())
                    .expect("eligible checked above");
                let owner = candidates.iter().copied().find(|id| {
                    members[*id].1.contains(&tp) && out[*id].len() <= out[lightest].len() + 1
                });
                let best = owner.unwrap_or(lightest).clone();
                out.get_mut(&best).expect("member").insert(tp);
            }
            balance(members, counts, &mut out);
        }
    }
    out
}

/// Evens out a sticky assignment that mixed subscriptions left uneven (a member of
/// topics only some members read may keep partitions that the others could take). Per
/// topic, while the most loaded member holding one of its partitions has at least two
/// more partitions than the least loaded member subscribed to it, one of those
/// partitions moves over, preferring partitions the holder did not own before (so fewer
/// owners change). When no topic moves anything, no member holds a partition that a
/// member with two fewer could take. Every move lowers the sum of squared loads, so this
/// ends; a move costs one scan of the topic's subscribers.
fn balance(
    members: &BTreeMap<String, (BTreeSet<String>, BTreeSet<TopicPartition>)>,
    counts: &BTreeMap<String, i32>,
    out: &mut BTreeMap<String, BTreeSet<TopicPartition>>,
) {
    let subscribers: Vec<(std::ops::RangeInclusive<TopicPartition>, Vec<&String>)> = counts
        .keys()
        .map(|t| {
            let of_topic = TopicPartition::new(t.as_str(), i32::MIN)
                ..=TopicPartition::new(t.as_str(), i32::MAX);
            let ids = members
                .iter()
                .filter(|(_, (subs, _))| subs.contains(t))
                .map(|(id, _)| id)
                .collect();
            (of_topic, ids)
        })
        .filter(|(_, ids): &(_, Vec<&String>)| ids.len() > 1)
        .collect();
    let load = |out: &BTreeMap<String, BTreeSet<TopicPartition>>, id: &String| out[id].len();
    loop {
        let mut moved = false;
        for (of_topic, ids) in &subscribers {
            loop {
                let light = *ids
                    .iter()
                    .min_by_key(|id| load(out, id))
                    .expect("two or more subscribers");
                let Some(heavy) = ids
                    .iter()
                    .filter(|id| out[**id].range(of_topic.clone()).next().is_some())
                    .max_by_key(|id| load(out, id))
                    .copied()
                else {
                    break;
                };
                if load(out, heavy) < load(out, light) + 2 {
                    break;
                }
                let held = &out[heavy];
                let tp = held
                    .range(of_topic.clone())
                    .find(|tp| !members[heavy].1.contains(*tp))
                    .or_else(|| held.range(of_topic.clone()).next())
                    .expect("holds one")
                    .clone();
                out.get_mut(heavy).expect("member").remove(&tp);
                out.get_mut(light).expect("member").insert(tp);
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Members = BTreeMap<String, (BTreeSet<String>, BTreeSet<TopicPartition>)>;

    /// A negative partition count (the function is public) assigns nothing; the range
    /// assignor took it as 2^64 - 1 partitions and ran for ever.
    #[test]
    fn a_negative_partition_count_assigns_nothing() {
        let members: Members = BTreeMap::from([(
            "m".to_string(),
            (BTreeSet::from(["t".to_string()]), BTreeSet::new()),
        )]);
        let counts = BTreeMap::from([("t".to_string(), -3)]);
        for assignor in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            let out = assign(assignor, &members, &counts);
            assert!(out["m"].is_empty(), "{assignor:?}: {out:?}");
        }
    }

    /// A current assignment holding a negative partition (the function is public) is
    /// not kept: the sticky assignor kept it, in a slot a real partition needed.
    #[test]
    fn a_negative_current_partition_is_not_kept() {
        let members: Members = BTreeMap::from([(
            "m".to_string(),
            (
                BTreeSet::from(["t".to_string()]),
                BTreeSet::from([TopicPartition::new("t", -1)]),
            ),
        )]);
        let counts = BTreeMap::from([("t".to_string(), 1)]);
        let out = assign(Assignor::CooperativeSticky, &members, &counts);
        assert_eq!(out["m"], BTreeSet::from([TopicPartition::new("t", 0)]));
    }

    /// Every subscribed partition has exactly one owner, who subscribes to its topic,
    /// and no member holds two more partitions than a member that could take one.
    fn check_complete_and_balanced(
        members: &Members,
        counts: &BTreeMap<String, i32>,
        out: &BTreeMap<String, BTreeSet<TopicPartition>>,
    ) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for (id, tps) in out {
            for tp in tps {
                if !members[id].0.contains(tp.topic()) {
                    return Err(format!("{id} got {tp}"));
                }
                if !seen.insert(tp.clone()) {
                    return Err(format!("{tp} twice"));
                }
            }
        }
        for (t, &n) in counts {
            if members.values().any(|(s, _)| s.contains(t)) {
                for p in 0..n {
                    if !seen.contains(&TopicPartition::new(t.as_str(), p)) {
                        return Err(format!("{t}-{p} unassigned"));
                    }
                }
            }
        }
        for (heavy, h) in out {
            for (light, l) in out {
                if h.len() >= l.len() + 2
                    && h.iter().any(|tp| members[light].0.contains(tp.topic()))
                {
                    return Err(format!(
                        "{heavy} has {} and {light} {}, which could take one",
                        h.len(),
                        l.len()
                    ));
                }
            }
        }
        Ok(())
    }

    /// A large group with mixed subscriptions, one member the only reader of a big
    /// topic (it can give nothing away): complete and balanced.
    #[test]
    fn a_large_mixed_group_is_balanced() {
        let counts: BTreeMap<String, i32> = [("z", 1000), ("a", 500), ("b", 500)]
            .map(|(t, n)| (t.to_string(), n))
            .into();
        let subs = |ts: &[&str]| ts.iter().map(|t| t.to_string()).collect::<BTreeSet<_>>();
        let mut members: Members = BTreeMap::new();
        members.insert("m000".into(), (subs(&["z"]), BTreeSet::new()));
        for i in 1..100 {
            let s = if i <= 50 {
                subs(&["a", "b"])
            } else {
                subs(&["a"])
            };
            members.insert(format!("m{i:03}"), (s, BTreeSet::new()));
        }
        let first = assign(Assignor::CooperativeSticky, &members, &counts);
        check_complete_and_balanced(&members, &counts, &first).unwrap();
        // A member leaves; the others keep what they had.
        members.remove("m050");
        for (id, (_, current)) in members.iter_mut() {
            *current = first[id].clone();
        }
        let second = assign(Assignor::CooperativeSticky, &members, &counts);
        check_complete_and_balanced(&members, &counts, &second).unwrap();
    }

    /// From a review: A and B read `t` (10 partitions, 5 each); C joins, subscribed
    /// only to `u` (no partitions). Each kept a third of all partitions (counting C),
    /// and the rest were dealt out anew: `t-4` and `t-8` changed owners for nothing
    /// (each a revoke, an offset hand-off, state moved). Nothing moves now.
    #[test]
    fn a_member_of_other_topics_joining_moves_nothing() {
        let t = |ps: std::ops::Range<i32>| ps.map(|p| TopicPartition::new("t", p)).collect();
        let subs = |s: &str| BTreeSet::from([s.to_string()]);
        let members: Members = BTreeMap::from([
            ("a".to_string(), (subs("t"), t(0..5))),
            ("b".to_string(), (subs("t"), t(5..10))),
            ("c".to_string(), (subs("u"), BTreeSet::new())),
        ]);
        let counts = BTreeMap::from([("t".to_string(), 10), ("u".to_string(), 0)]);
        let out = assign(Assignor::CooperativeSticky, &members, &counts);
        assert_eq!(out["a"], t(0..5), "{out:?}");
        assert_eq!(out["b"], t(5..10), "{out:?}");
    }

    proptest::proptest! {
        /// Cooperative-sticky with any subscriptions (mixed ones included) and any
        /// current assignments: every subscribed partition has exactly one owner, who
        /// subscribes to its topic, and no member holds two more partitions than another
        /// member that could take one of them.
        #[test]
        fn sticky_assignments_are_complete_and_balanced(
            subs in proptest::collection::vec(1u8..8, 1..7),
            counts in proptest::collection::vec(0i32..9, 3),
            owned in proptest::collection::vec(proptest::collection::vec((0usize..3, 0i32..9), 0..10), 7),
        ) {
            let topics = ["a", "b", "c"];
            let counts: BTreeMap<String, i32> =
                topics.iter().map(|t| t.to_string()).zip(counts).collect();
            let members: BTreeMap<String, (BTreeSet<String>, BTreeSet<TopicPartition>)> = subs
                .iter()
                .enumerate()
                .map(|(i, mask)| {
                    let sub: BTreeSet<String> = (0..3)
                        .filter(|b| mask & (1 << b) != 0)
                        .map(|b| topics[b].to_string())
                        .collect();
                    let current = owned[i]
                        .iter()
                        .map(|&(t, p)| TopicPartition::new(topics[t], p))
                        .collect();
                    (format!("m{i}"), (sub, current))
                })
                .collect();
            let out = assign(Assignor::CooperativeSticky, &members, &counts);
            let checked = check_complete_and_balanced(&members, &counts, &out);
            proptest::prop_assert!(checked.is_ok(), "{}: {out:?}", checked.unwrap_err());
        }
    }
}
