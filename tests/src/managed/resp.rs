//! The Redis wire protocol, as far as the proxy needs it: client requests parsed whole (RESP
//! arrays of bulk strings, and inline commands), server replies only delimited (RESP2 and RESP3
//! frames counted as they stream past, never rewritten), and a plain RESP2 reader for the
//! proxy's own queries.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

use crate::redis_server::Reply;

/// One client request: its arguments (the command name first) and its size on the wire.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) args: Vec<Vec<u8>>,
    pub(crate) len: usize,
}

/// What the start of a client's byte stream holds.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A whole request. An empty one (`*0`, a blank inline line) gets no reply from Redis.
    Request(Request),
    /// Not a whole request yet: read more.
    Incomplete,
    /// Bytes Redis would refuse with this protocol error and then close the connection.
    Invalid(&'static str),
}

/// The request at the start of `buf`.
pub(crate) fn parse_request(buf: &[u8]) -> Parsed {
    match buf.first() {
        None => Parsed::Incomplete,
        Some(b'*') => parse_array(buf),
        Some(_) => parse_inline(buf),
    }
}

fn parse_array(buf: &[u8]) -> Parsed {
    let Some((count, mut at)) = line(buf, 1) else {
        return Parsed::Incomplete;
    };
    let Some(count) = number(count) else {
        return Parsed::Invalid("ERR Protocol error: invalid multibulk length");
    };
    let mut args = Vec::with_capacity(count.clamp(0, 1024) as usize);
    for _ in 0..count.max(0) {
        if at >= buf.len() {
            return Parsed::Incomplete;
        }
        if buf[at] != b'$' {
            return Parsed::Invalid("ERR Protocol error: expected '$'");
        }
        let Some((len, start)) = line(buf, at + 1) else {
            return Parsed::Incomplete;
        };
        let Some(len) = number(len).and_then(|len| usize::try_from(len).ok()) else {
            return Parsed::Invalid("ERR Protocol error: invalid bulk length");
        };
        let end = start + len;
        if buf.len() < end + 2 {
            return Parsed::Incomplete;
        }
        args.push(buf[start..end].to_vec());
        at = end + 2;
    }
    Parsed::Request(Request { args, len: at })
}

/// An inline command: one line, arguments split on blanks, with Redis's quoting rules.
fn parse_inline(buf: &[u8]) -> Parsed {
    let Some(newline) = buf.iter().position(|&byte| byte == b'\n') else {
        return Parsed::Incomplete;
    };
    let text = buf[..newline]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[..newline]);
    match split_inline(text) {
        Some(args) => Parsed::Request(Request {
            args,
            len: newline + 1,
        }),
        None => Parsed::Invalid("ERR Protocol error: unbalanced quotes in request"),
    }
}

/// Split an inline command as Redis's `sdssplitargs` does: blanks separate arguments; `"..."`
/// takes `\n \r \t \b \a \xHH` escapes, `'...'` only `\'`; a closing quote must be followed by
/// a blank. `None` for unbalanced quotes.
fn split_inline(text: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut at = 0;
    loop {
        while at < text.len() && text[at].is_ascii_whitespace() {
            at += 1;
        }
        if at == text.len() {
            return Some(args);
        }
        let mut arg = Vec::new();
        let quote = matches!(text[at], b'"' | b'\'').then(|| text[at]);
        if quote.is_some() {
            at += 1;
        }
        loop {
            let Some(&byte) = text.get(at) else {
                // The end of the line closes an unquoted argument only.
                if quote.is_some() {
                    return None;
                }
                break;
            };
            match quote {
                None if byte.is_ascii_whitespace() => break,
                None => arg.push(byte),
                Some(q) if byte == q => {
                    at += 1;
                    if text.get(at).is_some_and(|next| !next.is_ascii_whitespace()) {
                        return None;
                    }
                    break;
                }
                Some(b'"') if byte == b'\\' && at + 1 < text.len() => {
                    at += 1;
                    let hex = text
                        .get(at + 1..at + 3)
                        .and_then(|hex| std::str::from_utf8(hex).ok())
                        .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                    match (text[at], hex) {
                        (b'x', Some(value)) => {
                            arg.push(value);
                            at += 2;
                        }
                        (b'n', _) => arg.push(b'\n'),
                        (b'r', _) => arg.push(b'\r'),
                        (b't', _) => arg.push(b'\t'),
                        (b'b', _) => arg.push(0x08),
                        (b'a', _) => arg.push(0x07),
                        (other, _) => arg.push(other),
                    }
                }
                Some(b'\'') if byte == b'\\' && text.get(at + 1) == Some(&b'\'') => {
                    at += 1;
                    arg.push(b'\'');
                }
                Some(_) => arg.push(byte),
            }
            at += 1;
        }
        args.push(arg);
    }
}

/// The line starting at `from`, without its CRLF, and where the next one starts.
fn line(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let end = from
        + buf
            .get(from..)?
            .windows(2)
            .position(|pair| pair == b"\r\n")?;
    Some((&buf[from..end], end + 2))
}

fn number(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A whole reply frame that went past: an answer to a request, or a RESP3 push (`>`), which
/// answers none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    Reply,
    Push,
}

/// Where server reply frames end, found while they stream through: a stack of the elements
/// each open aggregate still needs, the bulk bytes still to skip, and the partial header line.
/// RESP3 attributes (`|`) belong to the frame that follows them. Streamed strings and
/// aggregates (`$?`, `*?`), which Redis never sends, are refused.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    open: Vec<Open>,
    bulk_left: usize,
    header: Vec<u8>,
    push: bool,
}

#[derive(Debug)]
struct Open {
    left: u64,
    attribute: bool,
}

impl Frames {
    /// Read `bytes` on from where the last call stopped; push the offset just past each frame
    /// that ends in them, and its kind, to `ends`.
    pub(crate) fn feed(&mut self, bytes: &[u8], ends: &mut Vec<(usize, Frame)>) -> io::Result<()> {
        let mut at = 0;
        while at < bytes.len() {
            if self.bulk_left > 0 {
                let skip = self.bulk_left.min(bytes.len() - at);
                self.bulk_left -= skip;
                at += skip;
                if self.bulk_left == 0 && self.element_done() {
                    ends.push((at, self.kind()));
                }
                continue;
            }
            let newline = bytes[at..].iter().position(|&byte| byte == b'\n');
            let end = newline.map_or(bytes.len(), |newline| at + newline + 1);
            self.header.extend_from_slice(&bytes[at..end]);
            at = end;
            if newline.is_none() {
                continue;
            }
            let header = std::mem::take(&mut self.header);
            if self.header_done(&header)? {
                ends.push((at, self.kind()));
            }
        }
        Ok(())
    }

    fn kind(&self) -> Frame {
        if self.push { Frame::Push } else { Frame::Reply }
    }

    /// Take in one header line; whether it completes a top-level frame.
    fn header_done(&mut self, header: &[u8]) -> io::Result<bool> {
        let text = header.strip_suffix(b"\r\n").unwrap_or(header);
        let (&kind, rest) = text
            .split_first()
            .ok_or_else(|| io::Error::other("an empty reply line"))?;
        if self.open.is_empty() && kind != b'|' {
            self.push = kind == b'>';
        }
        let length = || {
            number(rest).ok_or_else(|| {
                io::Error::other(format!(
                    "a reply header the proxy cannot read: {:?}",
                    String::from_utf8_lossy(text)
                ))
            })
        };
        match kind {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(self.element_done()),
            b'$' | b'!' | b'=' => match length()? {
                n if n < 0 => Ok(self.element_done()),
                n => {
                    self.bulk_left = n as usize + 2;
                    Ok(false)
                }
            },
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = length()?;
                let left = if matches!(kind, b'%' | b'|') {
                    2 * n
                } else {
                    n
                };
                if left <= 0 {
                    return Ok(kind != b'|' && self.element_done());
                }
                self.open.push(Open {
                    left: left as u64,
                    attribute: kind == b'|',
                });
                Ok(false)
            }
            _ => Err(io::Error::other(format!(
                "a reply the proxy cannot read: {:?}",
                String::from_utf8_lossy(text)
            ))),
        }
    }

    /// One element is complete; whether that completes a top-level frame.
    fn element_done(&mut self) -> bool {
        while let Some(open) = self.open.last_mut() {
            open.left -= 1;
            if open.left > 0 {
                return false;
            }
            let open = self.open.pop().expect("the open aggregate");
            if open.attribute {
                // An attribute is done; the value it describes comes next.
                return false;
            }
        }
        true
    }
}

/// `args` as a RESP array of bulk strings.
pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg);
        request.extend_from_slice(b"\r\n");
    }
    request
}

/// An error reply with `message` (which starts with its code, as in `ERR ...`).
pub(crate) fn error(message: &str) -> Vec<u8> {
    format!("-{message}\r\n").into_bytes()
}

/// Read one RESP2 reply (the proxy's own connections never switch to RESP3).
pub async fn read_reply<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Reply> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let text = String::from_utf8_lossy(line.strip_suffix(b"\r\n").unwrap_or(&line)).into_owned();
    let (kind, rest) = text.split_at(text.len().min(1));
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| io::Error::other(format!("unexpected reply line {text:?}")))
    };
    Ok(match kind {
        "+" => Reply::Status(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Integer(number()?),
        "$" | "*" if number()? < 0 => Reply::Nil,
        "$" => {
            let mut bytes = vec![0; number()? as usize + 2];
            reader.read_exact(&mut bytes).await?;
            bytes.truncate(bytes.len() - 2);
            Reply::Bulk(String::from_utf8_lossy(&bytes).into_owned())
        }
        "*" => {
            let mut items = Vec::new();
            for _ in 0..number()? {
                items.push(Box::pin(read_reply(reader)).await?);
            }
            Reply::Array(items)
        }
        _ => return Err(io::Error::other(format!("unexpected reply line {text:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(parsed: Parsed) -> (Vec<String>, usize) {
        let Parsed::Request(request) = parsed else {
            panic!("not a request: {parsed:?}");
        };
        let args = request
            .args
            .iter()
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        (args, request.len)
    }

    #[test]
    fn an_array_request_is_parsed_once_whole() {
        let bytes = encode(&["SET", "k", "v a"]);
        for cut in 0..bytes.len() {
            assert!(matches!(parse_request(&bytes[..cut]), Parsed::Incomplete));
        }
        let mut more = bytes.clone();
        more.extend_from_slice(b"*1\r\n");
        assert_eq!(
            args(parse_request(&more)),
            (vec!["SET".into(), "k".into(), "v a".into()], bytes.len())
        );
    }

    #[test]
    fn inline_requests_follow_redis_quoting() {
        assert_eq!(
            args(parse_request(b"set k \"a b\\x41\\n\" 'it\\'s'\r\nGET")),
            (
                vec!["set".into(), "k".into(), "a bA\n".into(), "it's".into()],
                27
            )
        );
        assert_eq!(args(parse_request(b"\r\n")), (vec![], 2));
        assert!(matches!(parse_request(b"get \"k\r\n"), Parsed::Invalid(_)));
        assert!(matches!(
            parse_request(b"get \"k\"x\r\n"),
            Parsed::Invalid(_)
        ));
        assert!(matches!(parse_request(b"get k"), Parsed::Incomplete));
    }

    #[test]
    fn frames_end_where_their_last_element_does_in_any_split() {
        let replies: &[&[u8]] = &[
            b"+OK\r\n",
            b"$5\r\nhe\r\no\r\n",
            b"*2\r\n*1\r\n:1\r\n$-1\r\n",
            b"*0\r\n",
            b"%1\r\n+k\r\n*2\r\n_\r\n,1.5\r\n",
            b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n",
            b"|1\r\n+ttl\r\n:3\r\n#t\r\n",
            b"-ERR no\r\n",
        ];
        let stream = replies.concat();
        let mut expected = Vec::new();
        let mut end = 0;
        for reply in replies {
            end += reply.len();
            let kind = if reply[0] == b'>' {
                Frame::Push
            } else {
                Frame::Reply
            };
            expected.push((end, kind));
        }
        for chunk in 1..stream.len() {
            let mut frames = Frames::default();
            let mut ends = Vec::new();
            for (n, piece) in stream.chunks(chunk).enumerate() {
                let mut here = Vec::new();
                frames.feed(piece, &mut here).unwrap();
                ends.extend(here.into_iter().map(|(at, kind)| (n * chunk + at, kind)));
            }
            assert_eq!(ends, expected, "in chunks of {chunk}");
        }
    }
}
