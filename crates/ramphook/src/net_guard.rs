//! Which addresses ramphook may call (SSRF guard). Partner-typed URLs must not
//! reach the machine's own or its network's private services unless an
//! operator allows those ranges with `RAMPHOOK_ALLOW_CIDRS`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct NetGuard {
    allowed: Arc<Vec<IpNet>>,
}

impl NetGuard {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self {
            allowed: Arc::new(allowed),
        }
    }

    /// May ramphook connect to `ip`?
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !is_internal(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }

    /// Resolves `host` and keeps only permitted addresses. Errors name why.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, GuardError> {
        // `name.` is the same host as `name`.
        let host = host.strip_suffix('.').unwrap_or(host);
        let found: Vec<SocketAddr> = if is_localhost_name(host) {
            // RFC 6761: loopback by definition, whatever a resolver says.
            vec![(Ipv4Addr::LOCALHOST, port).into(), (Ipv6Addr::LOCALHOST, port).into()]
        } else {
            tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| GuardError::Dns(e.to_string()))?
                .collect()
        };
        if found.is_empty() {
            return Err(GuardError::Dns(format!("{host} has no address")));
        }
        let permitted: Vec<SocketAddr> = found.iter().copied().filter(|a| self.permits(a.ip())).collect();
        if permitted.is_empty() {
            return Err(GuardError::Refused(found[0].ip()));
        }
        Ok(permitted)
    }

    /// The DNS hook for the outbound HTTP client (`outbound.rs`): every
    /// name is resolved through the guard, so the address actually
    /// connected to is the one checked.
    pub fn hyper_resolver(&self) -> GuardedDns {
        GuardedDns(self.clone())
    }

    /// The connector skips the resolver for IP literals: the refused
    /// literal `host` (an URI's host, IPv6 in brackets), if it is one,
    /// checked before each request.
    pub fn refused_literal_host(&self, host: &str) -> Option<IpAddr> {
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let literal: IpAddr = bare.parse().ok()?;
        (!self.permits(literal)).then_some(literal)
    }
}

/// hyper-util's DNS hook (a `tower::Service` from names to addresses):
/// resolve, then drop every address the guard refuses. The connector sets
/// the port.
#[derive(Clone)]
pub struct GuardedDns(NetGuard);

impl tower::Service<hyper_util::client::legacy::connect::dns::Name> for GuardedDns {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = GuardError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, GuardError>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), GuardError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let guard = self.0.clone();
        Box::pin(async move { Ok(guard.resolve(name.as_str(), 0).await?.into_iter()) })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("dns: {0}")]
    Dns(String),
    #[error("refused address {0}: private, loopback, link-local or multicast targets are not allowed")]
    Refused(IpAddr),
}

/// `localhost` and every `*.localhost` name (any case).
fn is_localhost_name(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is treated as the IPv4 it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local() // includes 169.254.169.254, the cloud metadata address
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link local fe80::/10
        || ip.to_ipv4().is_some_and(|v4| is_internal_v4(v4) && ip.segments()[..6] == [0; 6]) // ::a.b.c.d
        || embedded_v4(ip).is_some_and(is_internal_v4)
}

/// The IPv4 address carried by a NAT64 (`64:ff9b::/96`) or 6to4
/// (`2002::/16`) address: a gateway would forward to it.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused_by_default() {
        let guard = NetGuard::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "fd00:ec2::254",
            "100.100.100.200",
            "240.0.0.1",
            "198.18.0.1",
        ] {
            assert!(!guard.permits(ip(bad)), "{bad} was permitted");
        }
        for good in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
        ] {
            assert!(guard.permits(ip(good)), "{good} was refused");
        }
    }

    #[test]
    fn refused_literal_hosts_are_named_and_names_are_left_to_the_resolver() {
        let guard = NetGuard::default();
        assert_eq!(guard.refused_literal_host("127.0.0.1"), Some(ip("127.0.0.1")));
        assert_eq!(guard.refused_literal_host("[::1]"), Some(ip("::1")));
        assert_eq!(guard.refused_literal_host("93.184.216.34"), None);
        assert_eq!(guard.refused_literal_host("localhost"), None);
        assert_eq!(guard.refused_literal_host("example.com"), None);
    }

    #[test]
    fn allow_cidrs_open_exactly_their_ranges() {
        let guard = NetGuard::new(vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]);
        assert!(guard.permits(ip("127.0.0.1")));
        assert!(guard.permits(ip("::ffff:127.0.0.1")));
        assert!(guard.permits(ip("::1")));
        assert!(!guard.permits(ip("10.0.0.1")));
    }
}
