//! Redis Cluster's key hash, and where a spread docket's partitions are placed.

/// CRC16-XMODEM (polynomial 0x1021, initial 0), the checksum Redis Cluster hashes keys with.
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The cluster slot of a key: the CRC16 of its hash tag (the text between its first `{` and
/// the next `}`, when not empty) or of the whole key, modulo 16384.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|byte| *byte == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|byte| *byte == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % 16384
}

/// The tags of `count` partitions of the docket `name`: its own name, then for each partition
/// `p` the tag `name:p.s` with the smallest salt `s` whose Redis Cluster slot falls in the
/// `p`-th of `count` equal bands of the slots, counted from the band of partition 0's slot. A
/// cluster whose masters serve equal ranges of slots (as `redis-cli --cluster create` makes them)
/// with as many masters as partitions has each partition on its own master. The tags depend on
/// nothing but the name and the count, so a layout record lost in a failover is written again
/// the same.
pub(crate) fn placed(name: &str, count: u16) -> Vec<String> {
    let count = u32::from(count.max(1));
    let band = |slot: u16| u32::from(slot) * count / 16384;
    let first = band(key_slot(name.as_bytes()));
    let mut tags = vec![name.to_owned()];
    for part in 1..count {
        let wanted = (first + part) % count;
        let tag = (0u32..)
            .map(|salt| format!("{name}:{part}.{salt}"))
            .find(|tag| band(key_slot(tag.as_bytes())) == wanted)
            .expect("every band of slots is reached by some salt");
        tags.push(tag);
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_redis_clusters() {
        // The check value of CRC16-XMODEM, and slots Redis Cluster's documentation and
        // `CLUSTER KEYSLOT` give.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(key_slot(b"{}"), crc16(b"{}") % 16384);
    }

    #[test]
    fn partitions_are_placed_one_in_each_band_of_slots_whatever_asks() {
        for name in ["plyr", "docket", "a", "tracks.v2"] {
            for count in [1u16, 2, 3, 6, 64] {
                let tags = placed(name, count);
                assert_eq!(tags.len(), usize::from(count));
                assert_eq!(tags[0], name);
                assert_eq!(tags, placed(name, count), "the same every time");
                let bands: std::collections::HashSet<u32> = tags
                    .iter()
                    .map(|tag| u32::from(key_slot(tag.as_bytes())) * u32::from(count) / 16384)
                    .collect();
                assert_eq!(bands.len(), usize::from(count), "{name} {count}: {tags:?}");
                for (part, tag) in tags.iter().enumerate().skip(1) {
                    assert!(tag.starts_with(&format!("{name}:{part}.")), "{tag}");
                }
            }
        }
    }
}
