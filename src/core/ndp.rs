//! The IPv6 neighbour cache with Neighbour Unreachability Detection (RFC 4861 §7.3): an entry
//! is INCOMPLETE while its address resolves (packets wait, bounded), REACHABLE for
//! ReachableTime after a confirmation, then STALE; the first packet sent to a STALE entry
//! starts DELAY, and an entry still unconfirmed after `DELAY_FIRST_PROBE_TIME` is PROBEd by
//! unicast solicitations until it answers or is removed.

use super::TxFrame;
use crate::time::Instant;
use crate::wire::MacAddr;
use std::collections::{HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::Duration;

/// RFC 4861 §10 protocol constants; a Router Advertisement may set the first two
/// ([`NeighborCache::set_times`]).
const REACHABLE_TIME: Duration = Duration::from_secs(30);
const RETRANS_TIMER: Duration = Duration::from_secs(1);
const DELAY_FIRST_PROBE_TIME: Duration = Duration::from_secs(5);
const MAX_MULTICAST_SOLICIT: u8 = 3;
const MAX_UNICAST_SOLICIT: u8 = 3;

/// An entry's reachability state (RFC 4861 §7.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NudState {
    /// Resolving.
    Incomplete {
        /// Multicast solicitations sent so far.
        sent: u8,
        /// When the next is due.
        next: Instant,
    },
    /// Confirmed reachable; STALE after `until`.
    Reachable {
        /// When the confirmation runs out.
        until: Instant,
    },
    /// Not confirmed lately; used as is, and confirmed when next used.
    Stale,
    /// Used while STALE: waiting for a confirmation before probing.
    Delay {
        /// When probing starts.
        until: Instant,
    },
    /// Probing with unicast solicitations.
    Probe {
        /// Probes sent so far.
        sent: u8,
        /// When the next is due.
        next: Instant,
    },
}

struct Entry {
    mac: Option<MacAddr>,
    state: NudState,
    /// IPv6 frames waiting for the address to resolve.
    queue: VecDeque<TxFrame>,
    /// Their bytes.
    queued: usize,
}

/// What sending to a neighbour takes.
pub enum Resolve {
    /// Send the frame (handed back) to this link address now.
    Send(MacAddr, TxFrame),
    /// The frame waits: `solicit` says a first multicast solicitation is due now, `overflow`
    /// that older frames were dropped to make room (the caller counts it).
    Queued {
        /// A first multicast solicitation is due now.
        solicit: bool,
        /// Waiting frames were dropped, oldest first.
        overflow: bool,
        /// The frame itself was dropped: the send-buffer data it carried was acknowledged or
        /// discarded meanwhile (see [`TxFrame::materialize`]).
        stale: bool,
    },
}

/// Solicitations the timers call for, and what resolution gave up on.
#[derive(Debug, Default)]
pub struct NdPoll {
    /// Targets to solicit: multicast (`None`) while resolving, unicast to the address's last
    /// known link address while probing.
    pub solicit: Vec<(Ipv6Addr, Option<MacAddr>)>,
    /// Entries removed unanswered, with the frames that were waiting for them.
    pub failed: Vec<(Ipv6Addr, Vec<TxFrame>)>,
}

/// What an advertisement or solicitation told us about a neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// A solicitation's source link-layer address option (RFC 4861 §7.2.3).
    Solicitation,
    /// An advertisement, with its Solicited and Override flags (RFC 4861 §7.2.5).
    Advertisement { solicited: bool, overriding: bool },
}

/// The neighbour cache: bounded in entries and in the bytes queued per entry.
pub struct NeighborCache {
    entries: HashMap<Ipv6Addr, Entry>,
    max_entries: usize,
    max_queued_bytes: usize,
    /// The earliest timer of any entry, kept so that `poll_at` scans nothing.
    next_timer: Option<Instant>,
    /// How long a confirmation keeps an entry REACHABLE (RFC 4861's ReachableTime).
    reachable_time: Duration,
    /// The time between solicitations (RFC 4861's RetransTimer).
    retrans_timer: Duration,
}

impl NeighborCache {
    pub fn new(max_entries: usize, max_queued_bytes: usize) -> Self {
        NeighborCache {
            entries: HashMap::new(),
            max_entries: max_entries.max(1),
            max_queued_bytes,
            next_timer: None,
            reachable_time: REACHABLE_TIME,
            retrans_timer: RETRANS_TIMER,
        }
    }

    /// A Router Advertisement's Reachable Time and Retrans Timer, each where not zero (RFC
    /// 4861 §6.3.4): from now on, confirmations and solicitations follow them.
    pub fn set_times(&mut self, reachable: Option<Duration>, retrans: Option<Duration>) {
        if let Some(r) = reachable {
            self.reachable_time = r;
        }
        if let Some(r) = retrans {
            self.retrans_timer = r;
        }
    }

    /// The state of `ip`'s entry, if any.
    pub fn state(&self, ip: Ipv6Addr) -> Option<NudState> {
        self.entries.get(&ip).map(|e| e.state)
    }

    /// The link address known for `ip`, in whatever state.
    pub fn mac(&self, ip: Ipv6Addr) -> Option<MacAddr> {
        self.entries.get(&ip).and_then(|e| e.mac)
    }

    fn arm(&mut self, at: Instant) {
        self.next_timer = Some(self.next_timer.map_or(at, |t| t.min(at)));
    }

    /// How to send `frame` to neighbour `ip`: at once, or kept until the address resolves.
    pub fn resolve(&mut self, now: Instant, ip: Ipv6Addr, mut frame: TxFrame) -> Resolve {
        if let Some(e) = self.entries.get_mut(&ip) {
            let mac = e.mac;
            match (e.state, mac) {
                (NudState::Reachable { until }, Some(mac)) if now < until => {
                    return Resolve::Send(mac, frame)
                }
                (NudState::Reachable { .. } | NudState::Stale, Some(mac)) => {
                    let until = now + DELAY_FIRST_PROBE_TIME;
                    e.state = NudState::Delay { until };
                    self.arm(until);
                    return Resolve::Send(mac, frame);
                }
                (NudState::Delay { .. } | NudState::Probe { .. }, Some(mac)) => {
                    return Resolve::Send(mac, frame)
                }
                _ => {
                    let mut overflow = false;
                    // What waits is whole: the send buffer moves on meanwhile. A frame whose
                    // data went meanwhile (acknowledged) need not wait at all.
                    if !frame.materialize() {
                        return Resolve::Queued {
                            solicit: false,
                            overflow,
                            stale: true,
                        };
                    }
                    let len = frame.bytes.len();
                    while !e.queue.is_empty() && e.queued + len > self.max_queued_bytes {
                        if let Some(old) = e.queue.pop_front() {
                            e.queued -= old.bytes.len();
                        }
                        overflow = true;
                    }
                    e.queued += len;
                    e.queue.push_back(frame);
                    return Resolve::Queued {
                        solicit: false,
                        overflow,
                        stale: false,
                    };
                }
            }
        }
        if self.entries.len() >= self.max_entries {
            self.evict_one();
        }
        let next = now + self.retrans_timer;
        let stale = !frame.materialize();
        let queue = if stale {
            VecDeque::new()
        } else {
            VecDeque::from([frame])
        };
        let queued = queue.iter().map(|f| f.bytes.len()).sum();
        self.entries.insert(
            ip,
            Entry {
                mac: None,
                state: NudState::Incomplete { sent: 1, next },
                queue,
                queued,
            },
        );
        self.arm(next);
        Resolve::Queued {
            solicit: true,
            overflow: false,
            stale,
        }
    }

    /// Drops one entry to make room: a STALE one if there is any, else any but INCOMPLETE
    /// ones with packets waiting. True if one went.
    fn evict_one(&mut self) -> bool {
        let victim = self
            .entries
            .iter()
            .find(|(_, e)| e.state == NudState::Stale)
            .or_else(|| self.entries.iter().find(|(_, e)| e.queue.is_empty()))
            .map(|(ip, _)| *ip);
        victim.is_some_and(|ip| self.entries.remove(&ip).is_some())
    }

    /// Records what a solicitation or advertisement said of `ip` (RFC 4861 §7.2.3, §7.2.5);
    /// returns the packets that were waiting for it, to send to `mac`, and whether the entry
    /// was created or changed.
    pub fn learn(
        &mut self,
        now: Instant,
        ip: Ipv6Addr,
        mac: Option<MacAddr>,
        how: Learned,
    ) -> (Vec<TxFrame>, bool) {
        let reachable = NudState::Reachable {
            until: now + self.reachable_time,
        };
        let Some(e) = self.entries.get_mut(&ip) else {
            // Only a solicitation's link address creates an entry (an unsolicited
            // advertisement for an unknown address is ignored).
            let (Learned::Solicitation, Some(mac)) = (how, mac) else {
                return (Vec::new(), false);
            };
            if self.entries.len() >= self.max_entries && !self.evict_one() {
                return (Vec::new(), false);
            }
            self.entries.insert(
                ip,
                Entry {
                    mac: Some(mac),
                    state: NudState::Stale,
                    queue: VecDeque::new(),
                    queued: 0,
                },
            );
            return (Vec::new(), true);
        };
        let changed_mac = mac.is_some() && mac != e.mac;
        let before = (e.mac, e.state);
        match how {
            Learned::Solicitation => {
                if changed_mac || matches!(e.state, NudState::Incomplete { .. }) {
                    e.mac = mac.or(e.mac);
                    e.state = NudState::Stale;
                }
            }
            Learned::Advertisement {
                solicited,
                overriding,
            } => {
                if matches!(e.state, NudState::Incomplete { .. }) {
                    if mac.is_none() {
                        return (Vec::new(), false);
                    }
                    e.mac = mac;
                    e.state = if solicited {
                        reachable
                    } else {
                        NudState::Stale
                    };
                } else if !overriding && changed_mac {
                    // A different address without the override flag: the entry is only
                    // suspect (RFC 4861 §7.2.5).
                    if matches!(e.state, NudState::Reachable { .. }) {
                        e.state = NudState::Stale;
                    }
                } else {
                    if changed_mac {
                        e.mac = mac;
                    }
                    if solicited {
                        e.state = reachable;
                    } else if changed_mac {
                        e.state = NudState::Stale;
                    }
                }
            }
        }
        let changed = before != (e.mac, e.state);
        let flushed = if e.mac.is_some() {
            e.queued = 0;
            e.queue.drain(..).collect()
        } else {
            Vec::new()
        };
        (flushed, changed)
    }

    /// Runs the timers due at `now`.
    pub fn poll(&mut self, now: Instant) -> NdPoll {
        let mut out = NdPoll::default();
        if self.next_timer.is_none_or(|t| t > now) {
            return out;
        }
        let mut gone = Vec::new();
        let mut next: Option<Instant> = None;
        for (ip, e) in self.entries.iter_mut() {
            match e.state {
                NudState::Incomplete { sent, next: at } if at <= now => {
                    if sent >= MAX_MULTICAST_SOLICIT {
                        gone.push(*ip);
                        continue;
                    }
                    e.state = NudState::Incomplete {
                        sent: sent + 1,
                        next: now + self.retrans_timer,
                    };
                    out.solicit.push((*ip, None));
                }
                NudState::Delay { until } if until <= now => {
                    e.state = NudState::Probe {
                        sent: 1,
                        next: now + self.retrans_timer,
                    };
                    out.solicit.push((*ip, e.mac));
                }
                NudState::Probe { sent, next: at } if at <= now => {
                    if sent >= MAX_UNICAST_SOLICIT {
                        gone.push(*ip);
                        continue;
                    }
                    e.state = NudState::Probe {
                        sent: sent + 1,
                        next: now + self.retrans_timer,
                    };
                    out.solicit.push((*ip, e.mac));
                }
                _ => {}
            }
            let at = match e.state {
                NudState::Incomplete { next, .. } | NudState::Probe { next, .. } => Some(next),
                NudState::Delay { until } => Some(until),
                _ => None,
            };
            if let Some(at) = at {
                next = Some(next.map_or(at, |n: Instant| n.min(at)));
            }
        }
        for ip in gone {
            if let Some(e) = self.entries.remove(&ip) {
                out.failed.push((ip, e.queue.into()));
            }
        }
        self.next_timer = next;
        out
    }

    /// When [`NeighborCache::poll`] next has work.
    pub fn poll_at(&self) -> Option<Instant> {
        self.next_timer
    }

    /// Entries held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xa);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);

    fn t(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    fn f(b: u8) -> TxFrame {
        TxFrame::whole(vec![b])
    }

    fn queued(r: Resolve) -> (bool, bool) {
        match r {
            Resolve::Queued {
                solicit, overflow, ..
            } => (solicit, overflow),
            Resolve::Send(..) => panic!("sent"),
        }
    }

    fn sent(r: Resolve) -> MacAddr {
        match r {
            Resolve::Send(mac, _) => mac,
            Resolve::Queued { .. } => panic!("queued"),
        }
    }

    #[test]
    fn resolution_queues_solicits_three_times_then_gives_up() {
        let mut nc = NeighborCache::new(8, 2);
        assert_eq!(queued(nc.resolve(t(0), A, f(1))), (true, false));
        assert_eq!(queued(nc.resolve(t(1), A, f(2))), (false, false));
        assert_eq!(queued(nc.resolve(t(2), A, f(3))), (false, true));
        assert_eq!(nc.poll_at(), Some(t(1000)));
        assert_eq!(nc.poll(t(1000)).solicit, vec![(A, None)]);
        assert_eq!(nc.poll(t(2000)).solicit, vec![(A, None)]);
        let last = nc.poll(t(3000));
        assert!(last.solicit.is_empty());
        assert_eq!(last.failed.len(), 1);
        assert_eq!((last.failed[0].0, last.failed[0].1.len()), (A, 2));
        assert_eq!(nc.len(), 0);
        assert_eq!(nc.poll_at(), None);
    }

    #[test]
    fn an_advertisement_flushes_the_queue_and_nud_runs_its_course() {
        let mut nc = NeighborCache::new(8, 4);
        nc.resolve(t(0), A, f(1));
        nc.resolve(t(0), A, f(2));
        let how = Learned::Advertisement {
            solicited: true,
            overriding: true,
        };
        let (flushed, changed) = nc.learn(t(10), A, Some(MAC), how);
        let bytes: Vec<Vec<u8>> = flushed.into_iter().map(|f| f.bytes).collect();
        assert_eq!(bytes, vec![vec![1], vec![2]]);
        assert!(changed);
        assert!(matches!(nc.state(A), Some(NudState::Reachable { .. })));
        assert_eq!(sent(nc.resolve(t(20), A, f(3))), MAC);
        // Past REACHABLE_TIME the next use starts DELAY, then PROBE, then removal.
        assert_eq!(sent(nc.resolve(t(40_000), A, f(4))), MAC);
        assert_eq!(nc.state(A), Some(NudState::Delay { until: t(45_000) }));
        assert_eq!(nc.poll(t(45_000)).solicit, vec![(A, Some(MAC))]);
        assert_eq!(nc.poll(t(46_000)).solicit, vec![(A, Some(MAC))]);
        assert_eq!(nc.poll(t(47_000)).solicit, vec![(A, Some(MAC))]);
        let failed = nc.poll(t(48_000)).failed;
        assert_eq!((failed[0].0, failed[0].1.len()), (A, 0));
    }

    #[test]
    fn solicitations_create_stale_entries_and_the_cache_is_bounded() {
        let mut nc = NeighborCache::new(2, 1);
        let b = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xb);
        let c = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xc);
        assert!(nc.learn(t(0), A, Some(MAC), Learned::Solicitation).1);
        assert_eq!(nc.state(A), Some(NudState::Stale));
        nc.learn(t(0), b, Some(MAC), Learned::Solicitation);
        nc.learn(t(0), c, Some(MAC), Learned::Solicitation);
        assert_eq!(nc.len(), 2, "one stale entry evicted");
        // An unsolicited advertisement for an unknown address creates nothing.
        let d = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xd);
        let how = Learned::Advertisement {
            solicited: false,
            overriding: true,
        };
        assert!(!nc.learn(t(0), d, Some(MAC), how).1);
        assert_eq!(nc.state(d), None);
    }
}
