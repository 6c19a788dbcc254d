//! The decoder: a pickle machine over an arena of plain values.
//!
//! Containers live in an arena and the stack and memo hold indices into it, so a list that is
//! memoized empty and filled afterwards (how Python pickles every list) is seen filled through
//! each reference, as in Python. Converting to JSON walks the arena with a depth bound, which
//! also stops a container that contains itself.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use super::opcode::*;
use super::{Limits, PickleError};

/// One value in the arena.
#[derive(Debug)]
enum Node {
    None,
    Bool(bool),
    /// Every int up to 128 bits; wider ones are only counted as too wide.
    Int(i128),
    WideInt,
    Float(f64),
    Str(String),
    Bytes,
    ByteArray,
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
    FrozenSet(Vec<usize>),
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::None => "None",
            Node::Bool(_) => "bool",
            Node::Int(_) | Node::WideInt => "int",
            Node::Float(_) => "float",
            Node::Str(_) => "str",
            Node::Bytes => "bytes",
            Node::ByteArray => "bytearray",
            Node::List(_) => "list",
            Node::Tuple(_) => "tuple",
            Node::Dict(_) => "dict",
            Node::Set(_) => "set",
            Node::FrozenSet(_) => "frozenset",
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "None",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// A stack slot: a value, or the mark that opcodes like `TUPLE` and `APPENDS` collect up to.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Mark,
    Value(usize),
}

/// A decoded pickle: the arena and the index of its top value.
#[derive(Debug)]
pub(super) struct Decoded {
    nodes: Vec<Node>,
    root: usize,
    limits: Limits,
}

/// The state of one decode.
struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<Slot>,
    memo: HashMap<u32, usize>,
    limits: &'a Limits,
}

impl Decoded {
    /// Run the pickle machine over `input`.
    pub(super) fn read(input: &[u8], limits: &Limits) -> Result<Decoded, PickleError> {
        if input.len() > limits.max_bytes {
            return Err(PickleError::TooLarge {
                what: "bytes",
                limit: limits.max_bytes,
            });
        }
        let mut machine = Machine {
            input,
            pos: 0,
            nodes: Vec::new(),
            stack: Vec::new(),
            memo: HashMap::new(),
            limits,
        };
        let root = machine.run()?;
        Ok(Decoded {
            nodes: machine.nodes,
            root,
            limits: *limits,
        })
    }

    pub(super) fn into_json(self) -> Result<Value, PickleError> {
        let mut budget = self.limits.max_values;
        self.json(self.root, 0, &mut budget)
    }

    pub(super) fn into_args(self) -> Result<Vec<Value>, PickleError> {
        let mut budget = self.limits.max_values;
        match &self.nodes[self.root] {
            Node::Tuple(items) | Node::List(items) => items
                .iter()
                .map(|&item| self.json(item, 1, &mut budget))
                .collect(),
            other => Err(PickleError::Shape {
                expected: "tuple",
                found: other.kind(),
            }),
        }
    }

    pub(super) fn into_kwargs(self) -> Result<Map<String, Value>, PickleError> {
        if !matches!(self.nodes[self.root], Node::Dict(_)) {
            return Err(PickleError::Shape {
                expected: "dict",
                found: self.nodes[self.root].kind(),
            });
        }
        match self.into_json()? {
            Value::Object(map) => Ok(map),
            other => Err(PickleError::Shape {
                expected: "dict",
                found: json_kind(&other),
            }),
        }
    }

    fn json(&self, id: usize, depth: usize, budget: &mut usize) -> Result<Value, PickleError> {
        if depth > self.limits.max_depth {
            return Err(PickleError::TooLarge {
                what: "levels of nesting (or refers to itself)",
                limit: self.limits.max_depth,
            });
        }
        *budget = budget.checked_sub(1).ok_or(PickleError::TooLarge {
            what: "values",
            limit: self.limits.max_values,
        })?;
        let array = |items: &[usize], budget: &mut usize| {
            items
                .iter()
                .map(|&item| self.json(item, depth + 1, budget))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        };
        Ok(match &self.nodes[id] {
            Node::None => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => {
                if let Ok(i) = i64::try_from(*i) {
                    Value::from(i)
                } else if let Ok(u) = u64::try_from(*i) {
                    Value::from(u)
                } else {
                    return Err(PickleError::NoJsonForm {
                        found: "int beyond 64 bits",
                    });
                }
            }
            Node::WideInt => {
                return Err(PickleError::NoJsonForm {
                    found: "int beyond 64 bits",
                });
            }
            Node::Float(f) => {
                Value::Number(Number::from_f64(*f).ok_or(PickleError::NoJsonForm {
                    found: "float nan or infinity",
                })?)
            }
            Node::Str(s) => Value::String(s.clone()),
            Node::Bytes => return Err(PickleError::NoJsonForm { found: "bytes" }),
            Node::ByteArray => return Err(PickleError::NoJsonForm { found: "bytearray" }),
            Node::List(items) | Node::Tuple(items) | Node::Set(items) | Node::FrozenSet(items) => {
                array(items, budget)?
            }
            Node::Dict(pairs) => {
                let mut map = Map::new();
                for &(key, value) in pairs {
                    let Node::Str(key) = &self.nodes[key] else {
                        return Err(PickleError::NoJsonForm {
                            found: "dict with a key that is not a string",
                        });
                    };
                    map.insert(key.clone(), self.json(value, depth + 1, budget)?);
                }
                Value::Object(map)
            }
        })
    }
}

impl Machine<'_> {
    fn run(&mut self) -> Result<usize, PickleError> {
        loop {
            let at = self.pos;
            let op = self.byte()?;
            match op {
                PROTO => {
                    let version = self.byte()?;
                    if !(2..=5).contains(&version) {
                        return Err(PickleError::Protocol(version));
                    }
                }
                FRAME => {
                    // A frame only tells the reader how much to buffer: its contents are read
                    // as they come, but its length must fit the input.
                    let len = self.uint(8)?;
                    if len > (self.input.len() - self.pos) as u64 {
                        return Err(PickleError::Truncated(self.input.len()));
                    }
                }
                STOP => {
                    let root = self.pop(at)?;
                    if self.pos != self.input.len() {
                        return Err(self.malformed(self.pos, "data after STOP"));
                    }
                    return Ok(root);
                }
                MARK => self.stack.push(Slot::Mark),
                POP => {
                    self.stack
                        .pop()
                        .ok_or_else(|| self.malformed(at, "POP on an empty stack"))?;
                }
                POP_MARK => {
                    self.until_mark(at)?;
                }
                DUP => {
                    let top = self.peek(at)?;
                    self.stack.push(Slot::Value(top));
                }
                NONE => self.push(Node::None)?,
                NEWTRUE => self.push(Node::Bool(true))?,
                NEWFALSE => self.push(Node::Bool(false))?,
                BININT1 => {
                    let i = self.byte()?;
                    self.push(Node::Int(i.into()))?
                }
                BININT2 => {
                    let i = self.uint(2)?;
                    self.push(Node::Int(i.into()))?
                }
                BININT => {
                    let i = self.take(4)?;
                    let i = i32::from_le_bytes([i[0], i[1], i[2], i[3]]);
                    self.push(Node::Int(i.into()))?
                }
                LONG1 => {
                    let len = self.byte()? as u64;
                    self.long(len)?
                }
                LONG4 => {
                    let len = self.take(4)?;
                    let len = i32::from_le_bytes([len[0], len[1], len[2], len[3]]);
                    let len =
                        u64::try_from(len).map_err(|_| self.malformed(at, "negative length"))?;
                    self.long(len)?
                }
                BINFLOAT => {
                    let bytes = self.take(8)?;
                    let mut be = [0; 8];
                    be.copy_from_slice(bytes);
                    self.push(Node::Float(f64::from_be_bytes(be)))?
                }
                SHORT_BINUNICODE => {
                    let len = self.byte()? as u64;
                    self.string(len)?
                }
                BINUNICODE => {
                    let len = self.uint(4)?;
                    self.string(len)?
                }
                BINUNICODE8 => {
                    let len = self.uint(8)?;
                    self.string(len)?
                }
                SHORT_BINBYTES => {
                    let len = self.byte()? as u64;
                    self.sized(len)?;
                    self.push(Node::Bytes)?
                }
                BINBYTES => {
                    let len = self.uint(4)?;
                    self.sized(len)?;
                    self.push(Node::Bytes)?
                }
                BINBYTES8 => {
                    let len = self.uint(8)?;
                    self.sized(len)?;
                    self.push(Node::Bytes)?
                }
                BYTEARRAY8 => {
                    let len = self.uint(8)?;
                    self.sized(len)?;
                    self.push(Node::ByteArray)?
                }
                EMPTY_LIST => self.push(Node::List(Vec::new()))?,
                EMPTY_TUPLE => self.push(Node::Tuple(Vec::new()))?,
                EMPTY_DICT => self.push(Node::Dict(Vec::new()))?,
                EMPTY_SET => self.push(Node::Set(Vec::new()))?,
                TUPLE => {
                    let items = self.until_mark(at)?;
                    self.push(Node::Tuple(items))?
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = usize::from(op - TUPLE1) + 1;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop(at)?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items))?
                }
                FROZENSET => {
                    let items = self.until_mark(at)?;
                    self.push(Node::FrozenSet(items))?
                }
                APPEND => {
                    let item = self.pop(at)?;
                    let list = self.peek(at)?;
                    self.extend(at, op, list, vec![item])?;
                }
                APPENDS | ADDITEMS => {
                    let items = self.until_mark(at)?;
                    let target = self.peek(at)?;
                    self.extend(at, op, target, items)?;
                }
                SETITEM => {
                    let value = self.pop(at)?;
                    let key = self.pop(at)?;
                    let dict = self.peek(at)?;
                    self.set_items(at, dict, vec![(key, value)])?;
                }
                SETITEMS => {
                    let items = self.until_mark(at)?;
                    if items.len() % 2 != 0 {
                        return Err(self.malformed(at, "SETITEMS with a key and no value"));
                    }
                    let pairs = items.chunks(2).map(|pair| (pair[0], pair[1])).collect();
                    let dict = self.peek(at)?;
                    self.set_items(at, dict, pairs)?;
                }
                MEMOIZE => {
                    let top = self.peek(at)?;
                    let index = u32::try_from(self.memo.len())
                        .map_err(|_| self.malformed(at, "memo overflow"))?;
                    self.memo.insert(index, top);
                }
                BINPUT | LONG_BINPUT => {
                    let index = if op == BINPUT {
                        self.byte()?.into()
                    } else {
                        self.uint(4)? as u32
                    };
                    let top = self.peek(at)?;
                    self.memo.insert(index, top);
                }
                BINGET | LONG_BINGET => {
                    let index = if op == BINGET {
                        self.byte()?.into()
                    } else {
                        self.uint(4)? as u32
                    };
                    let id = *self
                        .memo
                        .get(&index)
                        .ok_or_else(|| self.malformed(at, "memo entry read before written"))?;
                    self.stack.push(Slot::Value(id));
                }
                GLOBAL => {
                    let module = self.line()?;
                    let name = self.line()?;
                    return Err(PickleError::Global { module, name });
                }
                STACK_GLOBAL => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let text = |id: usize| match &self.nodes[id] {
                        Node::Str(s) => s.clone(),
                        other => format!("<{}>", other.kind()),
                    };
                    return Err(PickleError::Global {
                        module: text(module),
                        name: text(name),
                    });
                }
                other => {
                    return Err(PickleError::Opcode {
                        name: name(other),
                        offset: at,
                    });
                }
            }
        }
    }

    fn malformed(&self, offset: usize, reason: &'static str) -> PickleError {
        PickleError::Malformed { offset, reason }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.input.len())
            .ok_or(PickleError::Truncated(self.input.len()))?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    /// A little-endian unsigned integer of `n` bytes (at most 8).
    fn uint(&mut self, n: usize) -> Result<u64, PickleError> {
        let bytes = self.take(n)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// `len` bytes, checked against the input before anything is allocated.
    fn sized(&mut self, len: u64) -> Result<&[u8], PickleError> {
        let len = usize::try_from(len).map_err(|_| PickleError::Truncated(self.input.len()))?;
        self.take(len)
    }

    fn string(&mut self, len: u64) -> Result<(), PickleError> {
        let at = self.pos;
        let bytes = self.sized(len)?;
        let text = std::str::from_utf8(bytes)
            .map_err(|_| PickleError::Malformed {
                offset: at,
                reason: "a string that is not UTF-8",
            })?
            .to_string();
        self.push(Node::Str(text))
    }

    /// A two's-complement little-endian int of `len` bytes (`LONG1`, `LONG4`).
    fn long(&mut self, len: u64) -> Result<(), PickleError> {
        let bytes = self.sized(len)?;
        let node = match bytes.len() {
            0 => Node::Int(0),
            n if n <= 16 => {
                let fill = if bytes[n - 1] & 0x80 != 0 { 0xff } else { 0 };
                let mut wide = [fill; 16];
                wide[..n].copy_from_slice(bytes);
                Node::Int(i128::from_le_bytes(wide))
            }
            _ => Node::WideInt,
        };
        self.push(node)
    }

    /// A text line, as `GLOBAL` writes its module and name.
    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.input[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated(self.input.len()))?;
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(line)
    }

    fn push(&mut self, node: Node) -> Result<(), PickleError> {
        if self.nodes.len() >= self.limits.max_values {
            return Err(PickleError::TooLarge {
                what: "values",
                limit: self.limits.max_values,
            });
        }
        self.nodes.push(node);
        self.stack.push(Slot::Value(self.nodes.len() - 1));
        Ok(())
    }

    fn pop(&mut self, at: usize) -> Result<usize, PickleError> {
        match self.stack.pop() {
            Some(Slot::Value(id)) => Ok(id),
            Some(Slot::Mark) => Err(self.malformed(at, "a mark where a value was expected")),
            None => Err(self.malformed(at, "a value taken from an empty stack")),
        }
    }

    fn peek(&self, at: usize) -> Result<usize, PickleError> {
        match self.stack.last() {
            Some(Slot::Value(id)) => Ok(*id),
            Some(Slot::Mark) => Err(self.malformed(at, "a mark where a value was expected")),
            None => Err(self.malformed(at, "a value taken from an empty stack")),
        }
    }

    /// Pop the values above the topmost mark, and the mark.
    fn until_mark(&mut self, at: usize) -> Result<Vec<usize>, PickleError> {
        let mark = self
            .stack
            .iter()
            .rposition(|slot| matches!(slot, Slot::Mark))
            .ok_or_else(|| self.malformed(at, "no mark to collect up to"))?;
        let items = self.stack[mark + 1..]
            .iter()
            .map(|slot| match slot {
                Slot::Value(id) => *id,
                Slot::Mark => unreachable!("the topmost mark is at `mark`"),
            })
            .collect();
        self.stack.truncate(mark);
        Ok(items)
    }

    /// `APPEND` and `APPENDS` add to a list, `ADDITEMS` to a set.
    fn extend(
        &mut self,
        at: usize,
        op: u8,
        target: usize,
        items: Vec<usize>,
    ) -> Result<(), PickleError> {
        match (&mut self.nodes[target], op) {
            (Node::List(list), APPEND | APPENDS) | (Node::Set(list), ADDITEMS) => {
                list.extend(items);
                Ok(())
            }
            _ if op == ADDITEMS => Err(self.malformed(at, "ADDITEMS on something not a set")),
            _ => Err(self.malformed(at, "items appended to something not a list")),
        }
    }

    fn set_items(
        &mut self,
        at: usize,
        target: usize,
        pairs: Vec<(usize, usize)>,
    ) -> Result<(), PickleError> {
        match &mut self.nodes[target] {
            Node::Dict(dict) => {
                dict.extend(pairs);
                Ok(())
            }
            _ => Err(self.malformed(at, "items set on something not a dict")),
        }
    }
}
