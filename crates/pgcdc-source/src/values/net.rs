//! Binary (send) formats of inet, cidr, macaddr, macaddr8, bit and varbit → the exact
//! text their output functions write, so a session with one of them can read binary.
//!
//! - `inet_send`/`cidr_send`: family (2: IPv4, 3: IPv6), prefix bits, an is-cidr byte,
//!   the address length (4 or 16), the address. `network_out` prints it with
//!   `pg_inet_net_ntop` (BIND's algorithm: all four IPv4 octets; IPv6 in hex words with
//!   the longest run of at least two zero words as `::`, the first such run on a tie, and
//!   the last 32 bits as dotted IPv4 after `::` or `::ffff:`), then `/bits` unless the
//!   bits are the whole address; cidr always has `/bits`.
//! - `macaddr_send`/`macaddr8_send`: the 6 or 8 bytes, printed as lower-case hex pairs
//!   joined by `:`.
//! - `bit_send`/`varbit_send`: an int32 bit count, then the bits packed most significant
//!   first; printed as `0`/`1` characters.

use std::io::Write as _;

use super::send::Reader;
use super::ValueError;

/// inet_out / cidr_out of an inet_send value.
pub fn inet_text(v: &[u8], out: &mut Vec<u8>) -> Result<(), ValueError> {
    const NAME: &str = "inet";
    let mut r = Reader {
        rest: v,
        name: NAME,
    };
    let head = r.take(4)?;
    let (family, bits, is_cidr, len) = (head[0], head[1], head[2] != 0, head[3]);
    let addr = r.take(usize::from(len))?;
    r.end()?;
    let max = match (family, len) {
        (2, 4) => {
            dotted(addr, out);
            32
        }
        (3, 16) => {
            ipv6(addr, out);
            128
        }
        _ => {
            return Err(ValueError::invalid(
                NAME,
                "unknown address family or length",
            ))
        }
    };
    if bits > max {
        return Err(ValueError::invalid(NAME, "prefix longer than the address"));
    }
    if bits != max || is_cidr {
        let _ = write!(out, "/{bits}");
    }
    Ok(())
}

/// inet_net_ntop_ipv6's address part (see the [module docs](self)).
fn ipv6(addr: &[u8], out: &mut Vec<u8>) {
    let words: Vec<u16> = addr
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    // The longest run of zero words (the first of equal ones), if at least 2 long.
    // Runs as (first word, length).
    let mut best: Option<(usize, usize)> = None;
    let mut cur: Option<(usize, usize)> = None;
    for (i, w) in words.iter().enumerate() {
        if *w == 0 {
            cur = Some(cur.map_or((i, 1), |(b, l)| (b, l + 1)));
        } else if let Some(c) = cur.take() {
            if best.is_none_or(|b| c.1 > b.1) {
                best = Some(c);
            }
        }
    }
    if let Some(c) = cur {
        if best.is_none_or(|b| c.1 > b.1) {
            best = Some(c);
        }
    }
    let best = best.filter(|b| b.1 >= 2);
    for (i, w) in words.iter().enumerate() {
        if let Some((base, len)) = best {
            if i >= base && i < base + len {
                if i == base {
                    out.push(b':');
                }
                continue;
            }
        }
        if i != 0 {
            out.push(b':');
        }
        let embedded_v4 = i == 6
            && best.is_some_and(|(base, len)| {
                base == 0
                    && (len == 6
                        || (len == 7 && words.get(7) != Some(&1))
                        || (len == 5 && words.get(5) == Some(&0xffff)))
            });
        if embedded_v4 {
            dotted(addr.get(12..).unwrap_or_default(), out);
            break;
        }
        let _ = write!(out, "{w:x}");
    }
    if best.is_some_and(|(base, len)| base + len == words.len()) {
        out.push(b':');
    }
}

/// IPv4's dotted decimal octets.
fn dotted(octets: &[u8], out: &mut Vec<u8>) {
    for (i, octet) in octets.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        let _ = write!(out, "{octet}");
    }
}

/// macaddr_out / macaddr8_out of the 6 or 8 bytes.
pub fn macaddr_text(v: &[u8], out: &mut Vec<u8>) -> Result<(), ValueError> {
    if v.len() != 6 && v.len() != 8 {
        return Err(ValueError::invalid("macaddr", "not 6 or 8 bytes"));
    }
    for (i, b) in v.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        let _ = write!(out, "{b:02x}");
    }
    Ok(())
}

/// bit_out / varbit_out of a bit_send value.
pub fn bit_text(v: &[u8], out: &mut Vec<u8>) -> Result<(), ValueError> {
    const NAME: &str = "bit";
    let mut r = Reader {
        rest: v,
        name: NAME,
    };
    let bits = r.count("negative bit length")?;
    let bytes = r.take(bits.div_ceil(8))?;
    r.end()?;
    out.extend((0..bits).map(|i| {
        let byte = bytes.get(i / 8).copied().unwrap_or(0);
        if byte & (0x80 >> (i % 8)) != 0 {
            b'1'
        } else {
            b'0'
        }
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(family: u8, bits: u8, cidr: bool, addr: &[u8]) -> String {
        let mut v = vec![family, bits, u8::from(cidr), addr.len() as u8];
        v.extend_from_slice(addr);
        let mut out = Vec::new();
        inet_text(&v, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn v6(words: [u16; 8]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn addresses_print_as_postgres_does() {
        // As inet_out / cidr_out write them (the same values are checked against the
        // server in types::network_money_timetz_and_bit_types_read_binary_exactly).
        let v4 = [10, 1, 2, 3];
        for (family, bits, cidr, addr, text) in [
            (2, 32, false, v4.to_vec(), "10.1.2.3"),
            (2, 8, false, v4.to_vec(), "10.1.2.3/8"),
            (2, 32, true, v4.to_vec(), "10.1.2.3/32"),
            (2, 0, true, vec![0; 4], "0.0.0.0/0"),
            (3, 128, false, v6([0, 0, 0, 0, 0, 0, 0, 1]), "::1"),
            (3, 128, false, v6([0; 8]), "::"),
            (
                3,
                64,
                true,
                v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]),
                "2001:db8::/64",
            ),
            (
                3,
                128,
                false,
                v6([0x2001, 0xdb8, 0, 1, 0, 0, 0, 1]),
                "2001:db8:0:1::1",
            ),
            (3, 128, false, v6([1, 0, 0, 2, 0, 0, 3, 4]), "1::2:0:0:3:4"),
            (
                3,
                128,
                false,
                v6([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304]),
                "::ffff:1.2.3.4",
            ),
            (
                3,
                128,
                false,
                v6([0, 0, 0, 0, 0, 0, 0x0102, 0x0304]),
                "::1.2.3.4",
            ),
            (
                3,
                128,
                false,
                v6([1, 2, 3, 4, 5, 6, 7, 8]),
                "1:2:3:4:5:6:7:8",
            ),
            (
                3,
                128,
                false,
                v6([1, 0, 3, 4, 5, 6, 7, 0]),
                "1:0:3:4:5:6:7:0",
            ),
        ] {
            assert_eq!(inet(family, bits, cidr, &addr), text);
        }
    }

    #[test]
    fn macs_and_bits_print_as_postgres_does() {
        let text = |f: fn(&[u8], &mut Vec<u8>) -> Result<(), ValueError>, v: &[u8]| {
            let mut out = Vec::new();
            f(v, &mut out).map(|()| String::from_utf8(out).unwrap())
        };
        assert_eq!(
            text(macaddr_text, &[8, 0, 0x2b, 1, 2, 3]).unwrap(),
            "08:00:2b:01:02:03"
        );
        assert_eq!(
            text(macaddr_text, &[8, 0, 0x2b, 1, 2, 3, 4, 0xff]).unwrap(),
            "08:00:2b:01:02:03:04:ff"
        );
        assert!(text(macaddr_text, &[1, 2, 3]).is_err());
        assert_eq!(text(bit_text, &[0, 0, 0, 5, 0b1010_1000]).unwrap(), "10101");
        assert_eq!(text(bit_text, &[0, 0, 0, 0]).unwrap(), "");
        assert!(text(bit_text, &[0, 0, 0, 9, 0xff]).is_err());
        assert!(text(bit_text, &[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(text(inet_text, &[2, 33, 0, 4, 1, 2, 3, 4]).is_err());
        assert!(text(inet_text, &[4, 32, 0, 4, 1, 2, 3, 4]).is_err());
        assert!(text(inet_text, &[2, 32, 0, 4, 1, 2, 3]).is_err());
    }
}
