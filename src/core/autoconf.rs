//! Router discovery (RFC 4861 §6.3) and stateless address autoconfiguration (RFC 4862 §5.5)
//! on Ethernet: Router Solicitations once the link-local address is in use, default routers
//! with their lifetimes, on-link prefixes, the link MTU, and addresses formed from advertised
//! prefixes and the interface identifier (then checked by DAD like any other). Redirects are
//! not followed (`icmpv6.rs` counts and ignores them). Every list is bounded.

use crate::config::Ipv6Config;
use crate::time::Instant;
use crate::wire::ipv6 as wire6;
use crate::wire::Medium;
use std::net::Ipv6Addr;
use std::time::Duration;

/// RFC 4861 §10: solicitations a host sends, and their spacing.
const MAX_RTR_SOLICITATIONS: u8 = 3;
const RTR_SOLICITATION_INTERVAL: Duration = Duration::from_secs(4);
/// Routers and on-link prefixes kept at most; past them a new one is ignored.
const MAX_ROUTERS: usize = 8;
const MAX_PREFIXES: usize = 16;
/// RFC 4862 §5.5.3 (e): a lifetime shorter than this cannot cut an address's remaining one
/// below it, so that a forged advertisement cannot end an address at once.
const TWO_HOURS: Duration = Duration::from_secs(2 * 3600);

/// An on-link prefix and when it stops being one.
#[derive(Clone, Copy, Debug)]
struct OnLink {
    prefix: Ipv6Addr,
    len: u8,
    until: Instant,
}

/// Router discovery's state.
#[derive(Debug)]
pub struct Autoconf {
    enabled: bool,
    /// Solicitations sent; when the next is due (`None`: not started, or done).
    rs_sent: u8,
    rs_next: Option<Instant>,
    /// Default routers (link-local addresses) and when each stops being one.
    routers: Vec<(Ipv6Addr, Instant)>,
    prefixes: Vec<OnLink>,
    /// The link MTU a router advertised.
    mtu: Option<usize>,
}

/// A Prefix Information option (RFC 4861 §4.6.2) as it bears on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixInfo {
    /// The prefix, its bits past `len` cleared.
    pub prefix: Ipv6Addr,
    /// Its length.
    pub len: u8,
    /// The L flag: addresses in it are on the link.
    pub on_link: bool,
    /// The A flag: form an address in it.
    pub autonomous: bool,
    /// Seconds it stays valid (`u32::MAX`: for ever).
    pub valid: u32,
    /// Seconds addresses in it stay preferred.
    pub preferred: u32,
}

/// A lifetime in seconds from `now`; `u32::MAX` is for ever (RFC 4861 §4.6.2), kept as a
/// hundred years.
fn until(now: Instant, secs: u32) -> Instant {
    let secs = if secs == u32::MAX {
        100 * 365 * 86_400
    } else {
        u64::from(secs)
    };
    now + Duration::from_secs(secs)
}

impl Autoconf {
    /// Router discovery per `cfg`: only on Ethernet, and only with `slaac` on.
    pub fn new(cfg: &Ipv6Config, medium: Medium, _now: Instant) -> Autoconf {
        Autoconf {
            enabled: cfg.slaac && medium == Medium::Ethernet,
            rs_sent: 0,
            rs_next: None,
            routers: Vec::new(),
            prefixes: Vec::new(),
            mtu: None,
        }
    }

    /// Whether router discovery runs.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The link-local address is in use: solicitations may start (RFC 4861 §6.3.7).
    pub fn start(&mut self, now: Instant) {
        if self.enabled && self.rs_sent == 0 && self.rs_next.is_none() {
            self.rs_next = Some(now);
        }
    }

    /// Ends what expired at `now`; true if a Router Solicitation is due now.
    pub fn poll(&mut self, now: Instant, have_link_local: bool) -> bool {
        self.routers.retain(|&(_, t)| t > now);
        self.prefixes.retain(|p| p.until > now);
        if !have_link_local || self.rs_next.is_none_or(|t| t > now) {
            return false;
        }
        self.rs_sent += 1;
        self.rs_next = (self.rs_sent < MAX_RTR_SOLICITATIONS && self.routers.is_empty())
            .then(|| now + RTR_SOLICITATION_INTERVAL);
        true
    }

    /// When [`Autoconf::poll`] next has work.
    pub fn poll_at(&self) -> Option<Instant> {
        let expiry = self
            .routers
            .iter()
            .map(|&(_, t)| t)
            .chain(self.prefixes.iter().map(|p| p.until))
            .min();
        crate::time::earliest(self.rs_next, expiry)
    }

    /// Whether an advertised on-link prefix holds `dst`.
    pub fn is_on_link(&self, dst: Ipv6Addr) -> bool {
        self.prefixes
            .iter()
            .any(|p| wire6::same_prefix(p.prefix, dst, p.len))
    }

    /// The default router to use: the first one learned that is still one.
    pub fn default_router(&self) -> Option<Ipv6Addr> {
        self.routers.first().map(|&(r, _)| r)
    }

    /// A Neighbour Advertisement without the Router flag for `ip`: it is no router any more,
    /// and leaves the default routers (RFC 4861 §7.2.5). True if it was one.
    pub fn not_a_router(&mut self, ip: Ipv6Addr) -> bool {
        let before = self.routers.len();
        self.routers.retain(|&(r, _)| r != ip);
        self.routers.len() != before
    }

    /// The link MTU a router advertised.
    pub fn mtu(&self) -> Option<usize> {
        self.mtu
    }

    /// A Router Advertisement from `router` (validated): its lifetime makes it a default
    /// router or ends it (RFC 4861 §6.3.4), its MTU (within `device_mtu` and the minimum) is
    /// the link's, its on-link prefixes are recorded. True if the router is new.
    pub fn advertisement(
        &mut self,
        now: Instant,
        router: Ipv6Addr,
        lifetime_secs: u16,
        mtu: Option<u32>,
        device_mtu: usize,
        prefixes: &[PrefixInfo],
    ) -> bool {
        let known = self.routers.iter().position(|&(r, _)| r == router);
        let mut new = false;
        match (known, lifetime_secs) {
            (Some(i), 0) => {
                self.routers.remove(i);
            }
            (Some(i), secs) => self.routers[i].1 = now + Duration::from_secs(u64::from(secs)),
            (None, 0) => {}
            (None, secs) if self.routers.len() < MAX_ROUTERS => {
                self.routers
                    .push((router, now + Duration::from_secs(u64::from(secs))));
                new = true;
            }
            (None, _) => {}
        }
        if !self.routers.is_empty() {
            // Solicitations stop once a router has answered (RFC 4861 §6.3.7).
            self.rs_next = None;
        }
        if let Some(m) = mtu.map(|m| m as usize) {
            if (super::ipv6::MIN_MTU..=device_mtu).contains(&m) {
                self.mtu = Some(m);
            }
        }
        for p in prefixes.iter().filter(|p| p.on_link) {
            let known = self
                .prefixes
                .iter()
                .position(|o| o.prefix == p.prefix && o.len == p.len);
            match (known, p.valid) {
                (Some(i), 0) => {
                    self.prefixes.remove(i);
                }
                (Some(i), v) => self.prefixes[i].until = until(now, v),
                (None, 0) => {}
                (None, v) if self.prefixes.len() < MAX_PREFIXES => self.prefixes.push(OnLink {
                    prefix: p.prefix,
                    len: p.len,
                    until: until(now, v),
                }),
                (None, _) => {}
            }
        }
        new
    }
}

/// The address SLAAC forms in `p` for the interface identifier of `link_local` (its low 64
/// bits), if `p` allows one: autonomous, not link-local, a /64, preferred no longer than valid
/// (RFC 4862 §5.5.3).
pub fn slaac_address(p: &PrefixInfo, link_local: Ipv6Addr) -> Option<Ipv6Addr> {
    if !p.autonomous
        || wire6::is_link_local(p.prefix)
        || p.len != 64
        || p.preferred > p.valid
        || p.valid == 0
    {
        return None;
    }
    let prefix = u128::from(p.prefix) & (u128::MAX << 64);
    let iid = u128::from(link_local) & (u128::MAX >> 64);
    Some(Ipv6Addr::from(prefix | iid))
}

/// The new valid lifetime's end of an autoconfigured address that had `remaining` when an
/// advertisement gave `valid` seconds (RFC 4862 §5.5.3 (e)); `None` leaves it as it is.
pub fn updated_lifetime(now: Instant, current: Instant, valid: u32) -> Option<Instant> {
    let received = until(now, valid);
    let remaining = current.saturating_since(now);
    if received > now + TWO_HOURS || received > current {
        Some(received)
    } else if remaining <= TWO_HOURS {
        None
    } else {
        Some(now + TWO_HOURS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(s)
    }

    const R: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

    fn prefix(valid: u32) -> PrefixInfo {
        PrefixInfo {
            prefix: "2001:db8:1::".parse().unwrap(),
            len: 64,
            on_link: true,
            autonomous: true,
            valid,
            preferred: valid.min(600),
        }
    }

    #[test]
    fn solicitations_start_with_the_link_local_address_and_stop_at_an_advertisement() {
        let mut a = Autoconf::new(&Ipv6Config::default(), Medium::Ethernet, t(0));
        assert!(!a.poll(t(0), false));
        a.start(t(1));
        assert!(
            !a.poll(t(1), false),
            "not before the link-local address is usable"
        );
        assert!(a.poll(t(1), true));
        assert_eq!(a.poll_at(), Some(t(5)));
        assert!(a.poll(t(5), true));
        assert!(a.advertisement(t(6), R, 1800, Some(1400), 1500, &[prefix(3600)]));
        assert_eq!(
            a.poll_at(),
            Some(t(1806)),
            "no more solicitations; the router's lifetime"
        );
        assert_eq!(a.default_router(), Some(R));
        assert_eq!(a.mtu(), Some(1400));
        assert!(a.is_on_link("2001:db8:1::99".parse().unwrap()));
        assert!(!a.is_on_link("2001:db8:2::99".parse().unwrap()));
        // A lifetime of 0 ends the router; the prefix ends with its own.
        a.advertisement(t(10), R, 0, Some(100), 1500, &[]);
        assert_eq!(a.default_router(), None);
        assert_eq!(a.mtu(), Some(1400), "an MTU below the minimum is ignored");
        a.poll(t(3607), true);
        assert!(!a.is_on_link("2001:db8:1::99".parse().unwrap()));
        let off = Autoconf::new(&Ipv6Config::default(), Medium::Ip, t(0));
        assert!(!off.enabled());
    }

    #[test]
    fn slaac_forms_an_address_only_where_the_prefix_allows_and_keeps_two_hours() {
        let ll: Ipv6Addr = "fe80::aff:fe00:2".parse().unwrap();
        let p = prefix(3600);
        assert_eq!(
            slaac_address(&p, ll),
            Some("2001:db8:1::aff:fe00:2".parse().unwrap())
        );
        for bad in [
            PrefixInfo {
                autonomous: false,
                ..p
            },
            PrefixInfo { len: 48, ..p },
            PrefixInfo {
                preferred: 7200,
                ..p
            },
            PrefixInfo {
                prefix: "fe80::".parse().unwrap(),
                ..p
            },
        ] {
            assert_eq!(slaac_address(&bad, ll), None, "{bad:?}");
        }
        // Remaining 3 hours, advertised 10 minutes: cut to two hours, not to ten minutes.
        let now = t(1000);
        let current = now + Duration::from_secs(3 * 3600);
        assert_eq!(updated_lifetime(now, current, 600), Some(now + TWO_HOURS));
        // Remaining 1 hour: a shorter lifetime is ignored, a longer one taken.
        let current = now + Duration::from_secs(3600);
        assert_eq!(updated_lifetime(now, current, 600), None);
        assert_eq!(
            updated_lifetime(now, current, 5000),
            Some(now + Duration::from_secs(5000))
        );
    }
}
