//! Upstreams from a resolv.conf, the default when `--upstream` is not
//! given (as CoreDNS's `forward . /etc/resolv.conf`).

use std::net::{IpAddr, SocketAddr};

/// The `nameserver` addresses of resolv.conf `text`, on port 53, in
/// order. Lines that do not parse are skipped; IPv6 zone ids (`%eth0`) are
/// dropped with the zone.
pub fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let addr = words.next()?;
            let addr = addr.split('%').next()?;
            addr.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_in_order() {
        let text = "# comment\nsearch default.svc.cluster.local\nnameserver 192.0.2.53\n\
                    nameserver   2001:db8::53\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:5\n";
        let got: Vec<String> = nameservers(text).iter().map(ToString::to_string).collect();
        assert_eq!(got, ["192.0.2.53:53", "[2001:db8::53]:53", "[fe80::1]:53"]);
        assert!(nameservers("").is_empty());
    }
}
