//! Counters for every drop reason and protocol event, printed like `netstat -s`.

use std::fmt;

macro_rules! counters {
    ($( $group:literal { $( $name:ident : $doc:literal ),* $(,)? } )*) => {
        /// A snapshot of the stack's counters. Every drop has its own reason here.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            $($( #[doc = $doc] pub $name: u64, )*)*
        }

        impl Counters {
            /// `(group, name, description, value)` for every counter, in declaration order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, &'static str, &'static str, u64)> + '_ {
                [$($( ($group, stringify!($name), $doc, self.$name), )*)*].into_iter()
            }

            /// Adds `other`'s counts to these (the queues of one link, summed).
            pub fn add(&mut self, other: &Counters) {
                $($( self.$name += other.$name; )*)*
            }
        }
    };
}

counters! {
    "Link" {
        eth_rx_frames: "frames received",
        eth_tx_frames: "frames sent",
        eth_rx_truncated: "frames too short for an Ethernet header (dropped)",
        eth_rx_not_for_us: "frames for another MAC address (ignored)",
        eth_rx_unknown_ethertype: "frames with an unhandled ethertype (ignored)",
        dev_tx_errors: "frames the device failed to send",
        dev_rx_errors: "device read errors",
    }
    "Queues" {
        queue_passed_on: "frames passed on to the next queue (no connection or socket here)",
        queue_taken_over: "frames taken from another queue",
        queue_neighbour_copies: "ARP messages copied to the other queues",
        queue_pass_dropped: "frames not passed on: the next queue's backlog of passed frames was full (passed_backlog), or it had stopped (dropped)",
    }
    "Faults" {
        fault_dropped: "frames dropped by the fault injector",
        fault_corrupted: "frames corrupted by the fault injector",
        fault_duplicated: "frames duplicated by the fault injector",
        fault_reordered: "frames reordered by the fault injector",
        fault_marked: "ECN-capable frames marked Congestion Experienced by the fault injector",
        path_dropped: "frames dropped by the path emulator (its queue full, or the device refused them)",
        path_ce_marked: "ECN-capable frames the path emulator marked Congestion Experienced (queue over its threshold)",
    }
    "Arp" {
        arp_rx_packets: "ARP packets received",
        arp_rx_malformed: "malformed ARP packets (dropped)",
        arp_rx_not_for_us: "ARP requests for other addresses (ignored)",
        arp_rx_conflicts: "ARP packets claiming our own address",
        arp_tx_requests: "ARP requests sent",
        arp_tx_replies: "ARP replies sent",
        arp_cache_updates: "neighbour entries learned or refreshed",
        arp_cache_evictions: "neighbour entries evicted because the cache was full",
        arp_negative_advice: "neighbour entries confirmed again on TCP's negative advice",
        arp_resolution_failures: "addresses that did not resolve after all retries",
        arp_pending_dropped: "packets dropped while waiting for resolution",
        arp_pending_overflow: "packets dropped because the pending queue was full",
    }
    "Ip" {
        ip_rx_packets: "IPv4 packets received",
        ip_rx_delivered: "IPv4 datagrams delivered to upper layers",
        ip_rx_truncated: "packets shorter than their headers (dropped)",
        ip_rx_bad_version: "packets with a version other than 4 (dropped)",
        ip_rx_bad_ihl: "packets with a bad header length (dropped)",
        ip_rx_bad_length: "packets with a bad total length (dropped)",
        ip_rx_bad_checksum: "packets with a bad header checksum (dropped)",
        ip_rx_bad_source: "packets from a broadcast, multicast, 0/8, loopback or our own source (dropped)",
        ip_rx_not_for_us: "packets for another destination (dropped, we do not forward)",
        ip_rx_unknown_protocol: "datagrams for an unhandled protocol",
        ip_tx_packets: "IPv4 packets sent",
        ip_tx_no_route: "datagrams with no route (not sent)",
        ip_tx_needs_frag_df: "datagrams over the MTU with DF set (not sent)",
        ip_frag_created: "fragments created",
        ip_frag_datagrams: "datagrams fragmented",
    }
    "Reassembly" {
        reasm_fragments: "fragments received",
        reasm_bytes: "bytes held by incomplete datagrams now",
        reasm_ok: "datagrams reassembled",
        reasm_timeouts: "datagrams that timed out before completion",
        reasm_overlaps: "datagrams dropped for overlapping fragments with conflicting data",
        reasm_duplicates: "duplicate fragments (ignored)",
        reasm_oversize: "datagrams dropped for exceeding 65535 bytes",
        reasm_bad_fragments: "malformed fragments (dropped)",
        reasm_evictions: "incomplete datagrams evicted to make room",
        reasm_too_many_fragments: "datagrams dropped for having too many fragments",
        reasm_discarded_fragments: "fragments of already-dropped datagrams (dropped)",
    }
    "Icmp" {
        icmp_rx_messages: "ICMP messages received",
        icmp_rx_bad_checksum: "ICMP messages with a bad checksum (dropped)",
        icmp_rx_malformed: "malformed ICMP messages (dropped)",
        icmp_rx_echo_requests: "echo requests received",
        icmp_rx_echo_broadcast: "echo requests to a broadcast address (ignored, like Linux)",
        icmp_rx_dest_unreachable: "destination unreachable messages received",
        icmp_rx_errors_delivered: "ICMP errors handed to a socket",
        icmp_rx_other: "other ICMP messages (ignored)",
        icmp_tx_echo_replies: "echo replies sent",
        icmp_tx_port_unreachable: "port unreachable messages sent",
        icmp_tx_protocol_unreachable: "protocol unreachable messages sent",
        icmp_tx_time_exceeded: "reassembly time exceeded messages sent",
        icmp_tx_rate_limited: "ICMP errors suppressed by the rate limit",
        icmp_tx_suppressed: "ICMP errors not sent by RFC 1122 rules (about ICMP errors, broadcasts, fragments)",
    }
    "Udp" {
        udp_rx_datagrams: "UDP datagrams delivered to sockets",
        udp_rx_malformed: "UDP datagrams with bad lengths (dropped)",
        udp_rx_bad_checksum: "UDP datagrams with a bad checksum (dropped)",
        udp_rx_no_port: "UDP datagrams to a closed port",
        udp_rx_buffer_full: "UDP datagrams dropped because the socket's receive buffer was full",
        udp_rx_filtered: "UDP datagrams to a bound port from another peer than the connected one or to another address than the bound one (no socket takes them: port unreachable unless broadcast, as Linux)",
        udp_tx_datagrams: "UDP datagrams sent",
    }
    "Tcp" {
        tcp_active_opens: "active connection openings",
        tcp_passive_opens: "passive connection openings",
        tcp_attempt_fails: "failed connection attempts",
        tcp_estab_resets: "connection resets received or sent in established states",
        tcp_curr_estab: "connections established now (ESTABLISHED or CLOSE-WAIT)",
        tcp_table: "connections in the table now, in any state (TIME-WAIT included)",
        tcp_in_segs: "segments received",
        tcp_out_segs: "segments sent",
        tcp_out_tso: "super-segments sent for the device to split (TSO/GSO)",
        tcp_in_kept: "segments whose data was kept in the frame it arrived in, queued on the connection or held out of order (no copy into the receive buffer)",
        tcp_ofo_kept: "of those, segments held out of order (read in place once the hole before them filled, unless a segment they could not take copied them into the ring)",
        tcp_out_stale: "super-segments dropped unsent (counted as sent before): their data was acknowledged or discarded before the device took it",
        tcp_retrans_segs: "segments retransmitted",
        tcp_in_errs: "malformed segments (dropped)",
        tcp_in_csum_errs: "segments with a bad checksum (dropped)",
        tcp_out_rsts: "resets sent",
        tcp_no_port: "segments to a closed port (answered with a reset)",
        tcp_listen_drops: "SYNs dropped because a listen queue was full",
        tcp_tw_reopened: "connections reopened from TIME-WAIT by a new SYN (RFC 6191)",
        tcp_tw_overflow: "connections closed without TIME-WAIT: the TIME-WAIT table was full (max_time_wait)",
        tcp_time_wait: "connections in TIME-WAIT now",
        tcp_syncookies_sent: "SYN cookies sent (SYN queue full)",
        tcp_syncookies_recv: "connections opened by a valid SYN cookie",
        tcp_syncookies_failed: "ACKs with an invalid SYN cookie (answered with a reset)",
        tcp_fast_retransmits: "fast retransmits",
        tcp_timeouts: "retransmission timeouts",
        tcp_negative_advice: "connections that reached R1 retransmissions: negative advice to IP (RFC 9293 MUST-20)",
        tcp_rack_losses: "losses detected by RACK",
        tcp_loss_probes: "tail loss probes sent",
        tcp_recovery_probes: "of which during a recovery (no ACK for a probe timeout)",
        tcp_tlp_recoveries: "losses repaired by a tail loss probe (window reduced, RFC 8985 §7.4)",
        tcp_ecn_negotiated: "SYNs and SYN-ACKs received that agreed on ECN (RFC 3168 §6.1.1)",
        tcp_ecn_ce_recv: "data segments received marked Congestion Experienced",
        tcp_ecn_ece_recv: "ACKs received echoing a congestion mark (ECE)",
        tcp_ecn_reductions: "window reductions answering an ECN-Echo (RFC 3168 §6.1.2)",
        tcp_dsack_sent: "D-SACKs sent for duplicate segments (RFC 2883)",
        tcp_dsack_recv: "D-SACKs received",
        tcp_undos: "window reductions undone: the retransmissions were spurious (RFC 3708, RFC 4015)",
        tcp_pacing_holds: "times pacing held output back until a release time",
        tcp_trace_records: "per-connection trace records made (zero while no connection is traced)",
        tcp_urgent_in: "urgent pointers received that opened or advanced urgent data (RFC 9293 §3.8.5)",
        tcp_urgent_out: "segments sent with the urgent pointer",
        tcp_paws_drops: "segments dropped by PAWS (old timestamp)",
        tcp_challenge_acks: "challenge ACKs sent (RFC 5961)",
        tcp_out_of_window: "segments outside the receive window (dropped, ACKed)",
        tcp_ofo_queued: "segments queued out of order",
        tcp_ofo_drops: "out-of-order segments dropped (queue full)",
        tcp_mem_drops: "received data dropped unacknowledged under memory pressure: out-of-order first, then in-order past what the ring holds",
        tcp_mem_bytes: "bytes the buffers of all connections take now (the memory budget's use)",
        tcp_mem_pressure: "1 while the buffers' memory is past the pressure mark, else 0",
        tcp_mem_refused: "connections refused: the buffers' memory was at its limit",
        tcp_rcv_pruned: "segments trimmed to the receive window",
        tcp_zero_window_probes: "zero window probes sent",
        tcp_keepalive_probes: "keep-alive probes sent",
        tcp_keepalive_drops: "connections dropped after unanswered keep-alives",
        tcp_orphan_probe_drops: "closed connections dropped after 8 window probes the peer met with a zero window",
        tcp_aborted_timeout: "connections aborted after too many retransmissions",
        tcp_icmp_ignored: "ICMP errors for no connection (ignored)",
        tcp_icmp_out_of_window: "ICMP errors quoting a sequence number not in flight (ignored, RFC 5927)",
        tcp_pmtu_reductions: "path MTU reductions from ICMP fragmentation needed or Packet Too Big (RFC 1191, RFC 8201)",
        tcp_icmp_soft_errors: "ICMP errors kept as soft errors of established connections",
        tcp_icmp_aborts: "connection attempts failed by an ICMP error",
    }
    "Ip6" {
        ip6_rx_packets: "IPv6 packets received",
        ip6_rx_delivered: "IPv6 packets delivered to upper layers",
        ip6_rx_malformed: "IPv6 packets with a bad header or length (dropped)",
        ip6_rx_bad_source: "IPv6 packets from a multicast source (dropped)",
        ip6_rx_not_for_us: "IPv6 packets to an address that is not ours (dropped)",
        ip6_rx_bad_ext: "IPv6 packets with a malformed extension header (dropped)",
        ip6_rx_bad_option: "IPv6 packets dropped for an unrecognised option, as its type says",
        ip6_rx_routing: "IPv6 packets with a routing header left to process, or of type 0 (dropped, RFC 5095)",
        ip6_rx_fragments: "IPv6 fragments received (reassembly's counters are under Ip)",
        ip6_rx_bad_fragments: "IPv6 fragments of a bad length or past 65535 bytes, or reassembled into a malformed packet (dropped)",
        ip6_rx_multicast_transport: "IPv6 UDP or TCP to a multicast group (dropped: no group sockets here)",
        ip6_rx_unknown_next: "IPv6 packets with an unrecognised next header (parameter problem)",
        ip6_frag_datagrams: "IPv6 packets fragmented at their source (over the link MTU)",
        ip6_frag_created: "IPv6 fragments sent",
        ip6_tx_packets: "IPv6 packets sent",
        ip6_pmtu_updates: "path MTUs lowered by Packet Too Big (RFC 8201)",
        ip6_tx_no_route: "IPv6 packets to an off-link destination with no default router (dropped)",
        ip6_addrs_expired: "autoconfigured addresses removed at the end of their valid lifetime",
        ip6_dad_duplicates: "our addresses found in use by another node by DAD (not used)",
        ip6_addrs_preferred: "addresses that passed DAD and are in use",
    }
    "Icmp6" {
        icmp6_rx_messages: "ICMPv6 messages received",
        icmp6_rx_bad_checksum: "ICMPv6 messages with a bad checksum (dropped)",
        icmp6_rx_malformed: "malformed ICMPv6 messages (dropped)",
        icmp6_rx_not_ours: "ICMPv6 errors quoting a packet that is not ours (ignored)",
        icmp6_rx_echo_requests: "ICMPv6 echo requests received",
        icmp6_tx_echo_replies: "ICMPv6 echo replies sent",
        icmp6_rx_errors: "ICMPv6 error messages received",
        icmp6_rx_packet_too_big: "ICMPv6 Packet Too Big messages received",
        icmp6_rx_other: "ICMPv6 messages ignored (redirects, unknown types, router advertisements with autoconfiguration off)",
        icmp6_tx_errors: "ICMPv6 errors sent",
        icmp6_tx_rate_limited: "ICMPv6 errors not sent: rate limited",
    }
    "Nd" {
        nd_tx_router_solicitations: "Router Solicitations sent",
        nd_tx_mld_reports: "MLDv2 Reports sent (our solicited-node groups)",
        nd_rx_router_advertisements: "Router Advertisements accepted",
        nd_routers: "default routers learned from Router Advertisements",
        nd_prefixes_autoconfigured: "addresses formed from advertised prefixes (SLAAC)",
        nd_rx_solicitations: "Neighbour Solicitations received",
        nd_rx_advertisements: "Neighbour Advertisements received",
        nd_rx_invalid: "Neighbour Discovery messages failing validation (dropped, RFC 4861 §7.1)",
        nd_tx_solicitations: "Neighbour Solicitations sent",
        nd_tx_advertisements: "Neighbour Advertisements sent",
        nd_cache_updates: "neighbour entries learned or updated",
        nd_cache_evictions: "neighbour entries evicted because the cache was full",
        nd_resolution_failures: "IPv6 neighbours that did not answer (their packets dropped)",
        nd_queue_overflow: "IPv6 packets dropped because a resolving neighbour's queue was full",
    }
    "Intercept" {
        icpt_tcp_offered: "intercepted SYNs offered to the application",
        icpt_tcp_syn_absorbed: "retransmitted SYNs absorbed while their decision was pending",
        icpt_tcp_accepted: "intercepted connections accepted",
        icpt_tcp_refused: "intercepted connections refused (reset)",
        icpt_tcp_unreachable: "intercepted connections answered with host unreachable",
        icpt_tcp_ignored: "intercepted connections dropped silently by the application",
        icpt_tcp_expired: "intercepted SYNs dropped: no decision in time",
        icpt_tcp_pending_full: "intercepted SYNs dropped: too many decisions pending",
        icpt_tcp_over_limit: "intercepted SYNs past the connection cap (reset or dropped)",
        icpt_tcp_conns: "intercepted connections open now (TIME-WAIT excluded)",
        icpt_udp_offered: "intercepted UDP flows offered to the application",
        icpt_udp_accepted: "intercepted UDP flows accepted",
        icpt_udp_refused: "intercepted UDP flows refused (port unreachable)",
        icpt_udp_ignored: "intercepted UDP flows dropped by the application or without a decision",
        icpt_udp_over_limit: "UDP datagrams dropped: the flow cap was reached",
        icpt_udp_expired: "UDP flows ended by their idle timeout",
        icpt_udp_dropped: "UDP datagrams dropped on a refused or ignored flow",
        icpt_udp_flows: "intercepted UDP flows open now",
        icpt_echo_replies: "echo requests to intercepted addresses answered",
        icpt_echo_offered: "echo requests to intercepted addresses handed to the application",
        icpt_echo_unreachable: "echo requests answered with host unreachable by the application",
        icpt_echo_ignored: "echo requests to intercepted addresses dropped (configured, or by the application)",
        icpt_echo_pending_full: "echo requests dropped: too many waiting for the application",
        icpt_not_unicast: "packets to an intercepted address that is not unicast (dropped)",
    }
}

impl fmt::Display for Counters {
    /// Prints the non-zero counters grouped like `netstat -s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut group = "";
        for (g, _, doc, value) in self.iter() {
            if value == 0 {
                continue;
            }
            if g != group {
                writeln!(f, "{g}:")?;
                group = g;
            }
            writeln!(f, "    {value} {doc}")?;
        }
        Ok(())
    }
}
