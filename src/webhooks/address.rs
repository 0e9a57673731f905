//! Which URLs a webhook may target (server-side request forgery): `http`/`https` only, no
//! credentials in the URL, and a host whose every address is public. Loopback, private
//! (RFC 1918, fc00::/7), link-local (169.254/16, fe80::/10), unspecified, CGNAT (100.64/10),
//! multicast, broadcast, reserved and documentation ranges are refused, including inside
//! IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6 addresses, unless the operator allows
//! private addresses.
//!
//! The check runs at registration and again before every attempt, which then connects only to
//! the address vetted (so a DNS answer that changes in between cannot redirect the request).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2_048;

/// Why a URL may not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not an absolute URL, or too long.
    #[error("`url` is not an absolute URL of at most 2048 characters")]
    Malformed,
    /// A scheme other than `http` or `https`.
    #[error("`url` must use http or https")]
    Scheme,
    /// A user name or password in the URL.
    #[error("`url` must not hold credentials")]
    Credentials,
    /// The host does not resolve.
    #[error("the host of `url` does not resolve")]
    Unresolvable,
    /// The host is, or resolves to, an address that is not public.
    #[error("`url` reaches a non-public address ({0})")]
    NotPublic(IpAddr),
}

/// Parses `text` as a webhook URL: absolute, `http(s)`, with a host and no credentials.
pub fn parse(text: &str) -> Result<Url, UrlError> {
    if text.len() > MAX_URL_LEN {
        return Err(UrlError::Malformed);
    }
    let url = Url::parse(text).map_err(|_| UrlError::Malformed)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    if url.host().is_none() {
        return Err(UrlError::Malformed);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    Ok(url)
}

/// Resolves `url`'s host and returns the address to connect to: the first one, after checking
/// that every address is public (unless `allow_private`).
pub async fn vet(url: &Url, allow_private: bool) -> Result<SocketAddr, UrlError> {
    let port = url.port_or_known_default().ok_or(UrlError::Malformed)?;
    let addresses: Vec<SocketAddr> = match url.host() {
        Some(Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|_| UrlError::Unresolvable)?
            .collect(),
        None => return Err(UrlError::Malformed),
    };
    let first = *addresses.first().ok_or(UrlError::Unresolvable)?;
    if !allow_private && let Some(bad) = addresses.iter().find(|a| !is_public(a.ip())) {
        return Err(UrlError::NotPublic(bad.ip()));
    }
    Ok(first)
}

/// Whether `ip` is a public unicast address a webhook may reach.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network", 0.0.0.0 included
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // CGNAT
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224; // multicast, reserved, broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    let refused = ip.is_unspecified()
        || ip.is_loopback()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (segments[0] & 0xff00) == 0xff00 // multicast
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x0100 && segments[1..4] == [0, 0, 0]); // discard-only
    !refused
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
/// NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        // `::` and `::1` are not IPv4-compatible addresses; they are checked as IPv6.
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => {
            Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(text: &str) -> bool {
        is_public(text.parse().unwrap())
    }

    #[test]
    fn classifies_ipv4() {
        for refused in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.10",
        ] {
            assert!(!public(refused), "{refused} must be refused");
        }
        for allowed in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "93.184.216.34"] {
            assert!(public(allowed), "{allowed} must be allowed");
        }
    }

    #[test]
    fn classifies_ipv6() {
        for refused in [
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "2001:db8::1",
            "fec0::1",
        ] {
            assert!(!public(refused), "{refused} must be refused");
        }
        for allowed in ["2606:4700:4700::1111", "2001:4860:4860::8888"] {
            assert!(public(allowed), "{allowed} must be allowed");
        }
    }

    #[test]
    fn looks_inside_mapped_and_embedded_ipv4() {
        for refused in [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::192.168.0.1",
            "2002:7f00:0001::",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(!public(refused), "{refused} must be refused");
        }
        assert!(public("::ffff:8.8.8.8"));
        assert!(public("64:ff9b::8.8.8.8"));
        assert!(public("2002:0808:0808::1"));
    }

    #[test]
    fn parses_only_plain_http_urls() {
        assert!(parse("https://example.com/hooks").is_ok());
        assert!(parse("http://example.com:8080/hooks?x=1").is_ok());
        assert_eq!(parse("ftp://example.com/"), Err(UrlError::Scheme));
        assert_eq!(parse("file:///etc/passwd"), Err(UrlError::Scheme));
        assert_eq!(parse("https://user:pw@example.com/"), Err(UrlError::Credentials));
        assert_eq!(parse("not a url"), Err(UrlError::Malformed));
        assert_eq!(
            parse(&format!("https://e.com/{}", "a".repeat(2_100))),
            Err(UrlError::Malformed)
        );
    }

    #[tokio::test]
    async fn vets_literal_addresses() {
        let url = parse("http://127.0.0.1:9/x").unwrap();
        assert_eq!(vet(&url, false).await, Err(UrlError::NotPublic("127.0.0.1".parse().unwrap())));
        assert_eq!(vet(&url, true).await, Ok("127.0.0.1:9".parse().unwrap()));
        let url = parse("http://[::ffff:169.254.169.254]/").unwrap();
        assert!(matches!(vet(&url, false).await, Err(UrlError::NotPublic(_))));
        let url = parse("https://8.8.8.8/").unwrap();
        assert_eq!(vet(&url, false).await, Ok("8.8.8.8:443".parse().unwrap()));
    }
}
