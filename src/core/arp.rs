//! Neighbour cache and resolution (RFC 826, RFC 1122 §2.3.2).
//!
//! Pure bookkeeping: the interface turns the returned actions into frames. Entries expire after
//! `entry_ttl`; an entry in use and older than `refresh_after` is confirmed with a unicast
//! request before it expires. Unresolved addresses are asked for at most once per
//! `request_interval` and declared unreachable after `max_requests`, dropping their queue.

use super::ipv4::Datagram;
use super::TxFrame;
use crate::config::ArpConfig;
use crate::stats::Counters;
use crate::time::Instant;
use crate::wire::MacAddr;
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;

struct Neighbor {
    mac: MacAddr,
    updated: Instant,
    refresh_sent: Option<Instant>,
    /// When a transport gave negative advice about the path through it (RFC 1122
    /// §4.2.3.5); cleared when the neighbour answers.
    suspect_since: Option<Instant>,
}

struct Resolving {
    queue: VecDeque<Datagram>,
    requests_sent: u32,
    next_request: Instant,
}

/// What a lookup found.
pub enum Lookup {
    Found(MacAddr),
    /// Usable, but old: also send a unicast request to confirm it.
    FoundStale(MacAddr),
    Missing,
}

/// What the timers decided.
#[derive(Default)]
pub struct ArpTimeouts {
    /// Addresses to send another broadcast request for.
    pub requests: Vec<Ipv4Addr>,
    /// Datagrams whose next hop did not resolve.
    pub failed: Vec<Datagram>,
}

pub struct Arp {
    cfg: ArpConfig,
    cache: HashMap<Ipv4Addr, Neighbor>,
    resolving: HashMap<Ipv4Addr, Resolving>,
    pending_bytes: usize,
}

impl Arp {
    pub fn new(cfg: ArpConfig) -> Self {
        Arp {
            cfg,
            cache: HashMap::new(),
            resolving: HashMap::new(),
            pending_bytes: 0,
        }
    }

    pub fn lookup(&mut self, now: Instant, ip: Ipv4Addr) -> Lookup {
        let Some(n) = self.cache.get_mut(&ip) else {
            return Lookup::Missing;
        };
        let age = now - n.updated;
        let refresh_due = n
            .refresh_sent
            .is_none_or(|t| now - t >= self.cfg.request_interval);
        if let Some(since) = n.suspect_since {
            // Suspected and asked by unicast without an answer: resolve it again by
            // broadcast, no sooner than the request interval after the last unicast request.
            if now - since >= self.cfg.request_interval * self.cfg.max_requests && refresh_due {
                self.cache.remove(&ip);
                return Lookup::Missing;
            }
        }
        if age >= self.cfg.entry_ttl {
            self.cache.remove(&ip);
            return Lookup::Missing;
        }
        if (age >= self.cfg.refresh_after || n.suspect_since.is_some()) && refresh_due {
            n.refresh_sent = Some(now);
            return Lookup::FoundStale(n.mac);
        }
        Lookup::Found(n.mac)
    }

    /// Negative advice from a transport about a path through `ip` (RFC 1122 §4.2.3.5): the
    /// entry stays in use, but the next datagram to it also asks the neighbour by unicast
    /// (at most once per request interval, as any refresh), and if it has not answered after
    /// `max_requests` intervals the entry is dropped and resolved again by broadcast. So a
    /// neighbour that changed its address or went away is found out, and many connections
    /// advising about one gateway cost one request per interval (RFC 1122 §2.3.2.1). Returns
    /// whether the entry became suspect (false if unknown or suspect already).
    pub fn reconfirm(&mut self, now: Instant, ip: Ipv4Addr) -> bool {
        match self.cache.get_mut(&ip) {
            Some(n) if n.suspect_since.is_none() => {
                n.suspect_since = Some(now);
                true
            }
            _ => false,
        }
    }

    /// True if `ip` is in the cache (RFC 826's merge test).
    pub fn knows(&self, ip: Ipv4Addr) -> bool {
        self.cache.contains_key(&ip)
    }

    /// Records `ip` at `mac` and returns the datagrams that were waiting for it.
    pub fn learn(
        &mut self,
        now: Instant,
        ip: Ipv4Addr,
        mac: MacAddr,
        stats: &mut Counters,
    ) -> VecDeque<Datagram> {
        stats.arp_cache_updates += 1;
        if !self.cache.contains_key(&ip) && self.cache.len() >= self.cfg.cache_size {
            self.evict_one(stats);
        }
        self.cache.insert(
            ip,
            Neighbor {
                mac,
                updated: now,
                refresh_sent: None,
                suspect_since: None,
            },
        );
        match self.resolving.remove(&ip) {
            Some(r) => {
                self.pending_bytes -= r.queue.iter().map(Datagram::size).sum::<usize>();
                r.queue
            }
            None => VecDeque::new(),
        }
    }

    /// Evicts the least recently confirmed entry (an expired one if any). Runs only when the
    /// cache is full; the tie-break on the address keeps it deterministic.
    fn evict_one(&mut self, stats: &mut Counters) {
        let victim = self
            .cache
            .iter()
            .min_by_key(|(ip, n)| (n.updated, **ip))
            .map(|(ip, _)| *ip);
        if let Some(ip) = victim {
            self.cache.remove(&ip);
            stats.arp_cache_evictions += 1;
        }
    }

    /// Queues `dg` until `next_hop` resolves. Returns true if a request should go out now.
    pub fn enqueue(
        &mut self,
        now: Instant,
        next_hop: Ipv4Addr,
        dg: Datagram,
        stats: &mut Counters,
    ) -> bool {
        let size = dg.size();
        if self.pending_bytes + size > self.cfg.pending_bytes {
            stats.arp_pending_overflow += 1;
            return false;
        }
        if !self.resolving.contains_key(&next_hop) && self.resolving.len() >= self.cfg.max_resolving
        {
            stats.arp_pending_overflow += 1;
            return false;
        }
        let r = self.resolving.entry(next_hop).or_insert(Resolving {
            queue: VecDeque::new(),
            requests_sent: 0,
            next_request: now,
        });
        if r.queue.len() >= self.cfg.pending_per_addr {
            // Like Linux's unres_qlen: the oldest waiting packet makes room for the newest.
            if let Some(old) = r.queue.pop_front() {
                self.pending_bytes -= old.size();
            }
            stats.arp_pending_overflow += 1;
        }
        r.queue.push_back(dg);
        self.pending_bytes += size;
        if r.requests_sent == 0 {
            r.requests_sent = 1;
            r.next_request = now + self.cfg.request_interval;
            return true;
        }
        false
    }

    pub fn poll_at(&self) -> Option<Instant> {
        self.resolving.values().map(|r| r.next_request).min()
    }

    /// Retries due requests; gives up on addresses that used all their requests.
    pub fn poll(&mut self, now: Instant, stats: &mut Counters) -> ArpTimeouts {
        let mut out = ArpTimeouts::default();
        let max = self.cfg.max_requests;
        let interval = self.cfg.request_interval;
        let mut gave_up = Vec::new();
        for (ip, r) in self.resolving.iter_mut() {
            if r.next_request > now {
                continue;
            }
            if r.requests_sent >= max {
                gave_up.push(*ip);
            } else {
                r.requests_sent += 1;
                r.next_request = now + interval;
                out.requests.push(*ip);
            }
        }
        gave_up.sort_unstable();
        for ip in gave_up {
            if let Some(r) = self.resolving.remove(&ip) {
                stats.arp_resolution_failures += 1;
                stats.arp_pending_dropped += r.queue.len() as u64;
                self.pending_bytes -= r.queue.iter().map(Datagram::size).sum::<usize>();
                out.failed.extend(r.queue);
            }
        }
        out.requests.sort_unstable();
        out
    }
}

impl super::Interface {
    /// RFC 826 packet reception: merge the sender into the cache if known, add it if the
    /// packet targets us, and answer requests for our address.
    pub(super) fn arp_input(&mut self, now: Instant, payload: &[u8]) {
        use etherparse::{ArpOperation, ArpPacketSlice};
        self.stats.arp_rx_packets += 1;
        let Some(arp) = ArpPacketSlice::from_slice(payload)
            .ok()
            .and_then(|s| s.to_packet().try_eth_ipv4().ok())
        else {
            self.stats.arp_rx_malformed += 1;
            return;
        };
        let sender_ip = arp.sender_ipv4_addr();
        let sender_mac = MacAddr(arp.sender_mac);
        let target_ip = arp.target_ipv4_addr();
        if sender_mac.is_multicast()
            || (super::ipv4::is_bad_source(sender_ip) && !sender_ip.is_unspecified())
        {
            self.stats.arp_rx_malformed += 1;
            return;
        }
        if sender_ip == self.cfg.ip {
            if sender_mac != self.cfg.mac {
                self.stats.arp_rx_conflicts += 1;
                log::warn!("ARP: {sender_mac} claims our address {sender_ip}");
            }
            return;
        }
        let for_us = target_ip == self.cfg.ip;
        // An ARP probe (RFC 5227) has sender 0.0.0.0 and must not enter the cache.
        if !sender_ip.is_unspecified() && (for_us || self.arp.knows(sender_ip)) {
            let released = self.arp.learn(now, sender_ip, sender_mac, &mut self.stats);
            for dg in released {
                self.transmit_datagram(sender_mac, dg);
            }
        }
        if !for_us {
            self.stats.arp_rx_not_for_us += 1;
            return;
        }
        // Another queue's message teaches; that queue answers it.
        if arp.operation == ArpOperation::REQUEST && !self.queue.copy {
            let reply = etherparse::ArpEthIpv4Packet {
                operation: ArpOperation::REPLY,
                sender_mac: self.cfg.mac.0,
                sender_ipv4: self.cfg.ip.octets(),
                target_mac: arp.sender_mac,
                target_ipv4: arp.sender_ipv4,
            };
            self.queue_arp(sender_mac, &reply);
            self.stats.arp_tx_replies += 1;
        }
    }

    /// Asks who has `ip`: broadcast to resolve, unicast to `dst` to confirm a cached entry.
    pub(super) fn send_arp_request(&mut self, ip: Ipv4Addr, dst: MacAddr) {
        let request = etherparse::ArpEthIpv4Packet {
            operation: etherparse::ArpOperation::REQUEST,
            sender_mac: self.cfg.mac.0,
            sender_ipv4: self.cfg.ip.octets(),
            target_mac: [0; 6],
            target_ipv4: ip.octets(),
        };
        self.queue_arp(dst, &request);
        self.stats.arp_tx_requests += 1;
    }

    /// Gratuitous ARP (RFC 5227 §3 announcement): a request for our own address.
    pub(super) fn send_gratuitous_arp(&mut self) {
        self.send_arp_request(self.cfg.ip, MacAddr::BROADCAST);
    }

    fn queue_arp(&mut self, dst: MacAddr, packet: &etherparse::ArpEthIpv4Packet) {
        let bytes = packet.to_bytes();
        let mut frame =
            super::ethernet::frame(dst, self.cfg.mac, etherparse::EtherType::ARP, bytes.len());
        frame.extend_from_slice(&bytes);
        self.queue_frame(TxFrame::whole(frame));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    fn kind(l: Lookup) -> &'static str {
        match l {
            Lookup::Found(_) => "found",
            Lookup::FoundStale(_) => "stale",
            Lookup::Missing => "missing",
        }
    }

    /// Negative advice (RFC 1122 §4.2.3.5): the entry stays in use and is asked about by
    /// unicast once per interval; unanswered after `max_requests` intervals it is resolved
    /// again by broadcast; an answer clears the suspicion.
    #[test]
    fn negative_advice_confirms_the_neighbour_again() {
        let cfg = ArpConfig::default();
        let second = cfg.request_interval;
        let mut arp = Arp::new(cfg);
        let mut stats = Counters::default();
        let t0 = Instant::ZERO + Duration::from_secs(1);
        arp.learn(t0, IP, MAC, &mut stats);
        assert!(!arp.reconfirm(t0, Ipv4Addr::new(10, 0, 0, 9)), "unknown");
        assert!(arp.reconfirm(t0, IP));
        assert!(!arp.reconfirm(t0, IP), "suspect already: no second request");
        assert_eq!(kind(arp.lookup(t0, IP)), "stale", "a unicast request");
        assert_eq!(
            kind(arp.lookup(t0 + second / 2, IP)),
            "found",
            "one per interval"
        );
        assert_eq!(kind(arp.lookup(t0 + second, IP)), "stale");
        assert_eq!(kind(arp.lookup(t0 + 2 * second, IP)), "stale");
        assert_eq!(
            kind(arp.lookup(t0 + 3 * second, IP)),
            "missing",
            "broadcast now"
        );

        arp.learn(t0, IP, MAC, &mut stats);
        assert!(arp.reconfirm(t0, IP));
        arp.learn(t0 + second / 2, IP, MAC, &mut stats);
        assert_eq!(
            kind(arp.lookup(t0 + 10 * second, IP)),
            "found",
            "it answered"
        );
    }
}
