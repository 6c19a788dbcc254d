//! The codec against pickles Python 3.11 and cloudpickle 3.1.3 wrote (protocol 5), and against
//! every truncation and byte flip of them.

use serde_json::json;

use super::*;

/// `cloudpickle.dumps((7, "https://cdn.example/7.flac"))`: pydocket's `args`.
const SCAN: &[u8] =
    b"\x80\x05\x95\x22\x00\x00\x00\x00\x00\x00\x00K\x07\x8c\x1ahttps://cdn.example/7.flac\x94\x86\x94.";
/// `cloudpickle.dumps({})`: an empty `kwargs`.
const KWARGS_EMPTY: &[u8] = b"\x80\x05}\x94.";
/// `{'a': [1, 2.5, None, True, False], 'b': ('x', -1, 2**63, -2**63-1, 2**64), 's': {1},
/// 'f': frozenset([2]), 'by': b'ab', 'ba': bytearray(b'c')}`
const MIXED: &[u8] = b"\x80\x05\x95y\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01G@\x04\x00\x00\x00\x00\x00\x00N\x88\x89e\x8c\x01b\x94(\x8c\x01x\x94J\xff\xff\xff\xff\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\xff\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01t\x94\x8c\x01s\x94\x8f\x94(K\x01\x90\x8c\x01f\x94(K\x02\x91\x94\x8c\x02by\x94C\x02ab\x94\x8c\x02ba\x94\x96\x01\x00\x00\x00\x00\x00\x00\x00c\x94u.";
/// `l = ['q']; (l, l)`: a list memoized empty, filled, then referenced again.
const SHARED: &[u8] =
    b"\x80\x05\x95\x0c\x00\x00\x00\x00\x00\x00\x00]\x94\x8c\x01q\x94ah\x00\x86\x94.";
/// `(datetime(2026, 1, 1, tzinfo=timezone.utc),)`
const DATETIME: &[u8] = b"\x80\x05\x95Y\x00\x00\x00\x00\x00\x00\x00\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94C\x0a\x07\xea\x01\x01\x00\x00\x00\x00\x00\x00\x94h\x00\x8c\x08timezone\x94\x93\x94h\x00\x8c\x09timedelta\x94\x93\x94K\x00K\x00K\x00\x87\x94R\x94\x85\x94R\x94\x86\x94R\x94\x85\x94.";
/// `(Decimal('1.5'),)`
const DECIMAL: &[u8] = b"\x80\x05\x95#\x00\x00\x00\x00\x00\x00\x00\x8c\x07decimal\x94\x8c\x07Decimal\x94\x93\x94\x8c\x031.5\x94\x85\x94R\x94\x85\x94.";
/// `(UUID(int=1),)`
const UUID: &[u8] = b"\x80\x05\x95\x22\x00\x00\x00\x00\x00\x00\x00\x8c\x04uuid\x94\x8c\x04UUID\x94\x93\x94)\x81\x94}\x94\x8c\x03int\x94K\x01sb\x85\x94.";
/// `('héllo ✓',)`
const NON_ASCII: &[u8] =
    b"\x80\x05\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x0ah\xc3\xa9llo \xe2\x9c\x93\x94\x85\x94.";
/// `l = []; l.append(l)`
const CYCLE: &[u8] = b"\x80\x05\x95\x06\x00\x00\x00\x00\x00\x00\x00]\x94h\x00a.";
/// `t = ([],); t[0].append(t)`: Python's pickler uses `POP` and a memo read here.
const CYCLE_TUPLE: &[u8] =
    b"\x80\x05\x95\x0b\x00\x00\x00\x00\x00\x00\x00]\x94h\x00\x85\x94a0h\x01.";
/// `pickle.dumps(b'ab', 2)`: protocol 2 writes bytes through `_codecs.encode`.
const PROTOCOL_2_BYTES: &[u8] = b"\x80\x02c_codecs\x0aencode\x0aq\x00X\x02\x00\x00\x00abq\x01X\x06\x00\x00\x00latin1q\x02\x86q\x03Rq\x04.";
/// `10**30`
const BIG: &[u8] = b"\x80\x05\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8a\x0d\x00\x00\x00@\xea\xedtF\xd0\x9c,\x9f\x0c.";

fn limits() -> Limits {
    Limits::default()
}

#[test]
fn pydocket_positional_arguments_decode() {
    assert_eq!(
        decode_args(SCAN, &limits()),
        Ok(vec![json!(7), json!("https://cdn.example/7.flac")])
    );
    assert_eq!(decode_kwargs(KWARGS_EMPTY, &limits()), Ok(Map::new()));
    assert_eq!(
        decode_args(NON_ASCII, &limits()),
        Ok(vec![json!("héllo ✓")])
    );
}

#[test]
fn args_must_be_a_tuple_and_kwargs_a_dict() {
    assert_eq!(
        decode_args(KWARGS_EMPTY, &limits()),
        Err(PickleError::Shape {
            expected: "tuple",
            found: "dict"
        })
    );
    assert_eq!(
        decode_kwargs(SCAN, &limits()),
        Err(PickleError::Shape {
            expected: "dict",
            found: "tuple"
        })
    );
}

#[test]
fn every_plain_type_is_read() {
    // `{'a': [1, 2.5, None, True, False], 'b': ('x', -1, 2**63, -2**63), 's': {1},
    // 'f': frozenset([2]), 'n': 'x' * 300}`: a long string is `BINUNICODE`.
    let mut plain = b"\x80\x05\x95\x89\x01\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01G@\x04\x00\x00\x00\x00\x00\x00N\x88\x89e\x8c\x01b\x94(\x8c\x01x\x94J\xff\xff\xff\xff\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80t\x94\x8c\x01s\x94\x8f\x94(K\x01\x90\x8c\x01f\x94(K\x02\x91\x94\x8c\x01n\x94X,\x01\x00\x00".to_vec();
    plain.extend_from_slice(&[b'x'; 300]);
    plain.extend_from_slice(b"\x94u.");
    assert_eq!(
        decode(&plain, &limits()),
        Ok(json!({
            "a": [1, 2.5, null, true, false],
            "b": ["x", -1, 9_223_372_036_854_775_808u64, i64::MIN],
            "s": [1],
            "f": [2],
            "n": "x".repeat(300),
        }))
    );
    assert_eq!(decode(SHARED, &limits()), Ok(json!([["q"], ["q"]])));
}

#[test]
fn values_without_a_json_form_are_named() {
    let no_json = |bytes: &[u8]| match decode(bytes, &limits()) {
        Err(PickleError::NoJsonForm { found }) => found,
        other => panic!("expected NoJsonForm, got {other:?}"),
    };
    assert_eq!(no_json(MIXED), "int beyond 64 bits");
    assert_eq!(no_json(BIG), "int beyond 64 bits");
    assert_eq!(
        no_json(b"\x80\x05\x95\x06\x00\x00\x00\x00\x00\x00\x00C\x02ab\x94."),
        "bytes"
    );
    assert_eq!(
        no_json(b"\x80\x05\x95\x0a\x00\x00\x00\x00\x00\x00\x00G\x7f\xf8\x00\x00\x00\x00\x00\x00."),
        "float nan or infinity"
    );
    assert_eq!(
        no_json(b"\x80\x05\x95\x08\x00\x00\x00\x00\x00\x00\x00}\x94K\x01K\x02s."),
        "dict with a key that is not a string"
    );
}

#[test]
fn class_references_are_refused_by_name() {
    let global = |bytes: &[u8]| match decode(bytes, &limits()) {
        Err(PickleError::Global { module, name }) => format!("{module}.{name}"),
        other => panic!("expected Global, got {other:?}"),
    };
    assert_eq!(global(DATETIME), "datetime.datetime");
    assert_eq!(global(DECIMAL), "decimal.Decimal");
    assert_eq!(global(UUID), "uuid.UUID");
    assert_eq!(global(PROTOCOL_2_BYTES), "_codecs.encode");
    let message = decode(DATETIME, &limits()).unwrap_err().to_string();
    assert!(message.contains("`datetime.datetime`"), "{message}");
}

#[test]
fn opcodes_that_build_objects_are_refused() {
    // `REDUCE` on values alone, `BUILD`, and a protocol-0 `INT`.
    for (bytes, name) in [
        (&b"\x80\x05)K\x01R."[..], "REDUCE"),
        (b"\x80\x05}K\x01b.", "BUILD"),
        (b"\x80\x05I1\n.", "INT"),
        (b"\x80\x05\x97.", "NEXT_BUFFER"),
    ] {
        match decode(bytes, &limits()) {
            Err(PickleError::Opcode { name: found, .. }) => assert_eq!(found, name),
            other => panic!("expected {name} refused, got {other:?}"),
        }
    }
    assert_eq!(
        decode(b"\x80\x06N.", &limits()),
        Err(PickleError::Protocol(6))
    );
}

#[test]
fn a_container_holding_itself_stops_at_the_depth_limit() {
    for bytes in [CYCLE, CYCLE_TUPLE] {
        assert!(
            matches!(
                decode(bytes, &limits()),
                Err(PickleError::TooLarge { limit: 128, .. })
            ),
            "{bytes:?}"
        );
    }
}

#[test]
fn limits_bound_size_depth_and_values() {
    let small = Limits {
        max_bytes: 16,
        max_depth: 2,
        max_values: 4,
    };
    assert_eq!(
        decode(SCAN, &small),
        Err(PickleError::TooLarge {
            what: "bytes",
            limit: 16
        })
    );
    let deep = encode(&json!([[[1]]])).unwrap();
    assert!(matches!(
        decode(
            &deep,
            &Limits {
                max_bytes: 1 << 10,
                ..small
            }
        ),
        Err(PickleError::TooLarge { limit: 2, .. })
    ));
    let many = encode(&json!([1, 2, 3, 4, 5])).unwrap();
    assert!(matches!(
        decode(
            &many,
            &Limits {
                max_bytes: 1 << 10,
                max_depth: 8,
                max_values: 4
            }
        ),
        Err(PickleError::TooLarge { what: "values", .. })
    ));
    // Sharing multiplies values without growing the input: `a = [0] * 64; b = [a] * 64; ...`
    // is counted as what it expands to.
    let mut shared = b"\x80\x05]\x94(".to_vec();
    shared.extend(std::iter::repeat_n(&b"K\x00"[..], 64).flatten());
    shared.push(b'e');
    for level in 0..3u8 {
        shared.extend_from_slice(b"]\x94(");
        shared.extend(std::iter::repeat_n([b'h', level], 64).flatten());
        shared.push(b'e');
    }
    shared.push(b'.');
    assert!(matches!(
        decode(&shared, &limits()),
        Err(PickleError::TooLarge { what: "values", .. })
    ));
}

#[test]
fn length_prefixes_beyond_the_input_are_truncation() {
    // A `BINUNICODE8` claiming 2**62 bytes, and a frame longer than the input.
    assert!(matches!(
        decode(b"\x80\x05\x8d\x00\x00\x00\x00\x00\x00\x00\x40", &limits()),
        Err(PickleError::Truncated(_))
    ));
    assert!(matches!(
        decode(b"\x80\x05\x95\xff\x00\x00\x00\x00\x00\x00\x00N.", &limits()),
        Err(PickleError::Truncated(_))
    ));
    assert!(matches!(
        decode(b"\x80\x05N.N", &limits()),
        Err(PickleError::Malformed { .. })
    ));
}

#[test]
fn every_cut_and_flipped_byte_is_an_error_or_a_value_never_a_panic() {
    for fixture in [SCAN, MIXED, SHARED, DATETIME, UUID, CYCLE_TUPLE, BIG] {
        for cut in 0..fixture.len() {
            assert!(decode(&fixture[..cut], &limits()).is_err());
        }
        for at in 0..fixture.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bytes = fixture.to_vec();
                bytes[at] ^= flip;
                let _ = decode(&bytes, &limits());
                let _ = decode_args(&bytes, &limits());
            }
        }
    }
}

#[test]
fn encoded_values_read_back_unchanged() {
    let values = [
        json!(null),
        json!(true),
        json!(0),
        json!(255),
        json!(256),
        json!(65_535),
        json!(65_536),
        json!(-1),
        json!(i32::MIN),
        json!(i32::MAX as i64 + 1),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(-0.0),
        json!(1.5e300),
        json!("héllo ✓"),
        json!([]),
        json!({}),
        json!({"track_id": 7, "tags": ["a", {"b": [null]}]}),
        Value::Array((0..2500).map(Value::from).collect()),
        Value::Object((0..1500).map(|i| (i.to_string(), Value::from(i))).collect()),
    ];
    for value in values {
        let bytes = encode(&value).unwrap();
        assert_eq!(decode(&bytes, &limits()).as_ref(), Ok(&value), "{value}");
    }
}

#[test]
fn args_are_always_a_tuple_and_kwargs_a_dict() {
    // What the design proved a pydocket worker runs: `()` and a dict of strings.
    assert_eq!(encode_args(&[]).unwrap(), b"\x80\x03).");
    assert_eq!(encode_kwargs(&Map::new()).unwrap(), b"\x80\x03}.");
    assert_eq!(
        encode_args(&[json!(8), json!("u")]).unwrap(),
        b"\x80\x03K\x08X\x01\x00\x00\x00u\x86."
    );
    for n in 0..6 {
        let args: Vec<Value> = (0..n).map(Value::from).collect();
        let bytes = encode_args(&args).unwrap();
        assert_eq!(decode_args(&bytes, &limits()), Ok(args));
    }
    let kwargs = json!({"track_id": 7, "audio_url": "u"});
    let kwargs = kwargs.as_object().unwrap();
    let bytes = encode_kwargs(kwargs).unwrap();
    assert_eq!(decode_kwargs(&bytes, &limits()).as_ref(), Ok(kwargs));
}

#[test]
fn the_encoder_writes_plain_protocol_3_with_no_memo() {
    assert_eq!(
        encode(&json!({"a": [1, null]})).unwrap(),
        b"\x80\x03}(X\x01\x00\x00\x00a](K\x01Neu."
    );
    // Beyond i32, a minimal two's-complement `LONG1`, as Python writes it.
    assert_eq!(
        encode(&json!(1u64 << 31)).unwrap(),
        b"\x80\x03\x8a\x05\x00\x00\x00\x80\x00."
    );
    assert_eq!(
        encode(&json!(-(1i64 << 31) - 1)).unwrap(),
        b"\x80\x03\x8a\x05\xff\xff\xff\x7f\xff."
    );
}

#[test]
fn nesting_past_the_limit_is_refused_when_encoding() {
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!([deep]);
    }
    assert!(matches!(encode(&deep), Err(PickleError::TooLarge { .. })));
}
