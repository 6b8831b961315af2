//! The netCDF classic file format, 64-bit-offset variant (CDF-2), as a writer: a header
//! ([`Header`]: dimensions, global attributes, variables with their attributes) and the
//! layout of the data that follows it ([`Layout`]), plus the big-endian encoding of values.
//! Format-level only: nothing here knows what a reading is.
//!
//! The format (Unidata's "NetCDF Classic Format Specification"): `CDF\x02`, the record
//! count, the dimension list, the global attribute list and the variable list, each list
//! `ABSENT` (two zero words) or a tag and a count; every name and attribute value padded
//! with zero bytes to a multiple of four; each variable names its dimensions by index,
//! its type, its size in bytes (`vsize`, rounded up to four) and where its data begins (an
//! 8-byte offset in CDF-2). The data of the variables follows the header in variable order,
//! each padded to four bytes, all values big-endian (XDR).
//!
//! Invariants: only fixed-size dimensions are written (the record dimension is not used:
//! the writer knows every size before it writes the header), so a dimension's length is
//! at least 1; names are unique within their list and follow the netCDF-3 name rule;
//! [`Layout`]'s offsets are exactly where [`Header::encode`] says the data begins, so a
//! file is `encode()` followed by each variable's values and padding in order, and its
//! length is [`Layout::file_len`].

use std::io::{self, Write};

/// The netCDF external types the classic format has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NcType {
    /// 8-bit signed integer.
    Byte,
    /// 8-bit character (text).
    Char,
    /// 16-bit signed integer.
    Short,
    /// 32-bit signed integer.
    Int,
    /// 32-bit IEEE float.
    Float,
    /// 64-bit IEEE float.
    Double,
}

impl NcType {
    /// The type's code in the header.
    pub fn code(self) -> u32 {
        match self {
            NcType::Byte => 1,
            NcType::Char => 2,
            NcType::Short => 3,
            NcType::Int => 4,
            NcType::Float => 5,
            NcType::Double => 6,
        }
    }

    /// Bytes per value.
    pub fn size(self) -> u64 {
        match self {
            NcType::Byte | NcType::Char => 1,
            NcType::Short => 2,
            NcType::Int | NcType::Float => 4,
            NcType::Double => 8,
        }
    }
}

/// An attribute's values.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// Text (`NC_CHAR`), UTF-8.
    Text(String),
    /// `NC_BYTE` values.
    Bytes(Vec<i8>),
    /// `NC_SHORT` values.
    Shorts(Vec<i16>),
    /// `NC_INT` values.
    Ints(Vec<i32>),
    /// `NC_FLOAT` values.
    Floats(Vec<f32>),
    /// `NC_DOUBLE` values.
    Doubles(Vec<f64>),
}

impl AttrValue {
    fn nc_type(&self) -> NcType {
        match self {
            AttrValue::Text(_) => NcType::Char,
            AttrValue::Bytes(_) => NcType::Byte,
            AttrValue::Shorts(_) => NcType::Short,
            AttrValue::Ints(_) => NcType::Int,
            AttrValue::Floats(_) => NcType::Float,
            AttrValue::Doubles(_) => NcType::Double,
        }
    }

    fn len(&self) -> usize {
        match self {
            AttrValue::Text(t) => t.len(),
            AttrValue::Bytes(v) => v.len(),
            AttrValue::Shorts(v) => v.len(),
            AttrValue::Ints(v) => v.len(),
            AttrValue::Floats(v) => v.len(),
            AttrValue::Doubles(v) => v.len(),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        match self {
            AttrValue::Text(t) => out.extend_from_slice(t.as_bytes()),
            AttrValue::Bytes(v) => out.extend(v.iter().map(|b| b.to_be_bytes()[0])),
            AttrValue::Shorts(v) => v.iter().for_each(|x| out.extend(x.to_be_bytes())),
            AttrValue::Ints(v) => v.iter().for_each(|x| out.extend(x.to_be_bytes())),
            AttrValue::Floats(v) => v.iter().for_each(|x| out.extend(x.to_be_bytes())),
            AttrValue::Doubles(v) => v.iter().for_each(|x| out.extend(x.to_be_bytes())),
        }
        pad(out, out.len() - start);
    }
}

/// A named attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// Its name.
    pub name: String,
    /// Its values.
    pub value: AttrValue,
}

impl Attribute {
    /// A text attribute.
    pub fn text(name: &str, value: impl Into<String>) -> Attribute {
        Attribute {
            name: name.to_owned(),
            value: AttrValue::Text(value.into()),
        }
    }

    /// An attribute of `value`.
    pub fn new(name: &str, value: AttrValue) -> Attribute {
        Attribute {
            name: name.to_owned(),
            value,
        }
    }
}

/// A fixed-size dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimension {
    /// Its name.
    pub name: String,
    /// Its length, at least 1.
    pub len: u32,
}

/// A variable: its shape (dimension indices into [`Header::dims`]), type and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    /// Its name.
    pub name: String,
    /// Indices of its dimensions, slowest varying first; empty for a scalar.
    pub dims: Vec<usize>,
    /// Its type.
    pub nc_type: NcType,
    /// Its attributes, in order.
    pub attrs: Vec<Attribute>,
}

/// A whole header.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Header {
    /// Dimensions, in order.
    pub dims: Vec<Dimension>,
    /// Global attributes, in order.
    pub attrs: Vec<Attribute>,
    /// Variables, in order (their data follows in this order).
    pub vars: Vec<Variable>,
}

/// Why a header cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClassicError {
    /// A name breaks the netCDF-3 name rule.
    #[error("{0:?} is not a valid netCDF name")]
    BadName(String),
    /// Two dimensions, two variables or two attributes of one list share a name.
    #[error("the name {0:?} is used twice")]
    DuplicateName(String),
    /// A dimension of length zero (the classic format reads zero as the record dimension).
    #[error("dimension {0:?} has length zero")]
    EmptyDimension(String),
    /// A variable names a dimension that does not exist.
    #[error("variable {var:?} names dimension {dim}, which does not exist")]
    NoSuchDimension {
        /// The variable.
        var: String,
        /// The index it named.
        dim: usize,
    },
    /// A variable or the file is larger than CDF-2 can describe.
    #[error("variable {0:?} is too large for the 64-bit-offset format")]
    TooLarge(String),
    /// A count does not fit the header's 32-bit fields.
    #[error("too many entries in a list")]
    TooMany,
}

/// Where each variable's data goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The header's length, bytes: where the first variable's data begins.
    pub header_len: u64,
    /// Per variable: (begin offset in the file, data bytes without padding, `vsize` with it).
    pub vars: Vec<VarExtent>,
    /// The whole file's length, bytes.
    pub file_len: u64,
}

/// Where one variable's data lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarExtent {
    /// Its first byte's offset in the file.
    pub begin: u64,
    /// Its values' bytes.
    pub data_len: u64,
    /// Its bytes with padding to four (the header's `vsize`).
    pub padded_len: u64,
}

const MAGIC: &[u8; 4] = b"CDF\x02";
const NC_DIMENSION: u32 = 0x0A;
const NC_VARIABLE: u32 = 0x0B;
const NC_ATTRIBUTE: u32 = 0x0C;
/// The largest `vsize` CDF-2 can state (2^32 - 4).
const MAX_VSIZE: u64 = u32::MAX as u64 - 3;

/// Bytes of zero padding after `len` bytes.
pub fn padding(len: u64) -> u64 {
    (4 - len % 4) % 4
}

fn pad(out: &mut Vec<u8>, len: usize) {
    out.resize(out.len() + padding(len as u64) as usize, 0);
}

/// Whether `name` follows the netCDF-3 rule: a letter, digit or `_` first, then letters,
/// digits and `_ . @ + -`; no trailing space; at most 256 bytes. (Multibyte UTF-8 names
/// are allowed by the format; this writer keeps to ASCII.)
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'@' | b'+' | b'-'))
}

fn check_names<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), ClassicError> {
    let mut seen = std::collections::BTreeSet::new();
    for n in names {
        if !valid_name(n) {
            return Err(ClassicError::BadName(n.to_owned()));
        }
        if !seen.insert(n) {
            return Err(ClassicError::DuplicateName(n.to_owned()));
        }
    }
    Ok(())
}

fn count(n: usize) -> Result<u32, ClassicError> {
    u32::try_from(n).map_err(|_| ClassicError::TooMany)
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    put_u32(out, name.len() as u32);
    out.extend_from_slice(name.as_bytes());
    pad(out, name.len());
}

fn put_attrs(out: &mut Vec<u8>, attrs: &[Attribute]) -> Result<(), ClassicError> {
    if attrs.is_empty() {
        put_u32(out, 0);
        put_u32(out, 0);
        return Ok(());
    }
    put_u32(out, NC_ATTRIBUTE);
    put_u32(out, count(attrs.len())?);
    for a in attrs {
        put_name(out, &a.name);
        put_u32(out, a.value.nc_type().code());
        put_u32(out, count(a.value.len())?);
        a.value.encode(out);
    }
    Ok(())
}

impl Header {
    /// Checks names, dimensions and sizes.
    pub fn check(&self) -> Result<(), ClassicError> {
        check_names(self.dims.iter().map(|d| d.name.as_str()))?;
        check_names(self.vars.iter().map(|v| v.name.as_str()))?;
        check_names(self.attrs.iter().map(|a| a.name.as_str()))?;
        count(self.dims.len())?;
        count(self.vars.len())?;
        count(self.attrs.len())?;
        for d in &self.dims {
            if d.len == 0 {
                return Err(ClassicError::EmptyDimension(d.name.clone()));
            }
        }
        for v in &self.vars {
            check_names(v.attrs.iter().map(|a| a.name.as_str()))?;
            count(v.attrs.len())?;
            for a in &v.attrs {
                count(a.value.len())?;
            }
            for &d in &v.dims {
                if d >= self.dims.len() {
                    return Err(ClassicError::NoSuchDimension {
                        var: v.name.clone(),
                        dim: d,
                    });
                }
            }
        }
        for a in &self.attrs {
            count(a.value.len())?;
        }
        Ok(())
    }

    /// Values of variable `var` (the product of its dimensions' lengths; 1 for a scalar).
    pub fn values(&self, var: usize) -> u64 {
        self.vars[var]
            .dims
            .iter()
            .map(|&d| u64::from(self.dims[d].len))
            .product()
    }

    fn encode_with(&self, begins: &[u64], vsizes: &[u64]) -> Result<Vec<u8>, ClassicError> {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(MAGIC);
        put_u32(&mut out, 0); // numrecs: no record dimension
        if self.dims.is_empty() {
            put_u32(&mut out, 0);
            put_u32(&mut out, 0);
        } else {
            put_u32(&mut out, NC_DIMENSION);
            put_u32(&mut out, count(self.dims.len())?);
            for d in &self.dims {
                put_name(&mut out, &d.name);
                put_u32(&mut out, d.len);
            }
        }
        put_attrs(&mut out, &self.attrs)?;
        if self.vars.is_empty() {
            put_u32(&mut out, 0);
            put_u32(&mut out, 0);
        } else {
            put_u32(&mut out, NC_VARIABLE);
            put_u32(&mut out, count(self.vars.len())?);
            for (i, v) in self.vars.iter().enumerate() {
                put_name(&mut out, &v.name);
                put_u32(&mut out, count(v.dims.len())?);
                for &d in &v.dims {
                    put_u32(&mut out, count(d)?);
                }
                put_attrs(&mut out, &v.attrs)?;
                put_u32(&mut out, v.nc_type.code());
                put_u32(&mut out, u32::try_from(vsizes[i]).unwrap_or(u32::MAX));
                out.extend_from_slice(&begins[i].to_be_bytes());
            }
        }
        Ok(out)
    }

    /// Where every variable's data goes, after checking the header.
    pub fn layout(&self) -> Result<Layout, ClassicError> {
        self.check()?;
        let n = self.vars.len();
        // The header's length does not depend on the offsets' values (they are fixed-width).
        let header_len = self.encode_with(&vec![0; n], &vec![0; n])?.len() as u64;
        let mut at = header_len;
        let mut vars = Vec::with_capacity(n);
        for (i, v) in self.vars.iter().enumerate() {
            let data_len = self
                .values(i)
                .checked_mul(v.nc_type.size())
                .ok_or_else(|| ClassicError::TooLarge(v.name.clone()))?;
            let padded_len = data_len + padding(data_len);
            if padded_len > MAX_VSIZE {
                return Err(ClassicError::TooLarge(v.name.clone()));
            }
            vars.push(VarExtent {
                begin: at,
                data_len,
                padded_len,
            });
            at = at
                .checked_add(padded_len)
                .ok_or_else(|| ClassicError::TooLarge(v.name.clone()))?;
        }
        Ok(Layout {
            header_len,
            vars,
            file_len: at,
        })
    }

    /// The header's bytes, with each variable's offset and size from [`Header::layout`].
    pub fn encode(&self) -> Result<(Vec<u8>, Layout), ClassicError> {
        let layout = self.layout()?;
        let begins: Vec<u64> = layout.vars.iter().map(|v| v.begin).collect();
        let vsizes: Vec<u64> = layout.vars.iter().map(|v| v.padded_len).collect();
        let bytes = self.encode_with(&begins, &vsizes)?;
        debug_assert_eq!(bytes.len() as u64, layout.header_len);
        Ok((bytes, layout))
    }
}

/// Writes the zero padding that follows `data_len` bytes of a variable's values.
pub fn write_padding(w: &mut dyn Write, data_len: u64) -> io::Result<()> {
    w.write_all(&[0u8; 4][..padding(data_len) as usize])
}

/// The netCDF default fill value of doubles (`NC_FILL_DOUBLE`).
pub const FILL_DOUBLE: f64 = 9.969_209_968_386_869e36;
/// The netCDF default fill value of shorts (`NC_FILL_SHORT`).
pub const FILL_SHORT: i16 = -32_767;
/// The netCDF default fill value of bytes (`NC_FILL_BYTE`).
pub const FILL_BYTE: i8 = -127;

/// A variable's values as their big-endian bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An `NC_BYTE`.
    Byte(i8),
    /// An `NC_SHORT`.
    Short(i16),
    /// An `NC_INT`.
    Int(i32),
    /// An `NC_FLOAT`.
    Float(f32),
    /// An `NC_DOUBLE`.
    Double(f64),
}

impl Value {
    /// Appends the value's big-endian bytes.
    pub fn put(self, out: &mut Vec<u8>) {
        match self {
            Value::Byte(v) => out.extend(v.to_be_bytes()),
            Value::Short(v) => out.extend(v.to_be_bytes()),
            Value::Int(v) => out.extend(v.to_be_bytes()),
            Value::Float(v) => out.extend(v.to_be_bytes()),
            Value::Double(v) => out.extend(v.to_be_bytes()),
        }
    }

    /// The value's type.
    pub fn nc_type(self) -> NcType {
        match self {
            Value::Byte(_) => NcType::Byte,
            Value::Short(_) => NcType::Short,
            Value::Int(_) => NcType::Int,
            Value::Float(_) => NcType::Float,
            Value::Double(_) => NcType::Double,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn be_u32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    #[test]
    fn an_empty_header_is_magic_numrecs_and_three_absent_lists() {
        let (bytes, layout) = Header::default().encode().unwrap();
        let mut want = b"CDF\x02".to_vec();
        want.extend([0u8; 4 * 7]);
        assert_eq!(bytes, want);
        assert_eq!(layout.file_len, 32);
    }

    #[test]
    fn a_known_header_encodes_to_the_specified_bytes() {
        let h = Header {
            dims: vec![Dimension {
                name: "obs".to_owned(),
                len: 3,
            }],
            attrs: vec![Attribute::text("title", "ab")],
            vars: vec![Variable {
                name: "x".to_owned(),
                dims: vec![0],
                nc_type: NcType::Short,
                attrs: vec![Attribute::new("v", AttrValue::Shorts(vec![-2]))],
            }],
        };
        let (b, layout) = h.encode().unwrap();
        let mut want: Vec<u8> = b"CDF\x02\0\0\0\0".to_vec();
        want.extend([
            0, 0, 0, 0x0A, 0, 0, 0, 1, 0, 0, 0, 3, b'o', b'b', b's', 0, 0, 0, 0, 3,
        ]);
        want.extend([0, 0, 0, 0x0C, 0, 0, 0, 1, 0, 0, 0, 5]);
        want.extend(b"title\0\0\0");
        want.extend([0, 0, 0, 2, 0, 0, 0, 2, b'a', b'b', 0, 0]);
        want.extend([0, 0, 0, 0x0B, 0, 0, 0, 1, 0, 0, 0, 1, b'x', 0, 0, 0]);
        want.extend([0, 0, 0, 1, 0, 0, 0, 0]); // one dimension: 0
        want.extend([0, 0, 0, 0x0C, 0, 0, 0, 1, 0, 0, 0, 1, b'v', 0, 0, 0]);
        want.extend([0, 0, 0, 3, 0, 0, 0, 1, 0xff, 0xfe, 0, 0]);
        want.extend([0, 0, 0, 3, 0, 0, 0, 8]); // NC_SHORT, vsize 6 padded to 8
        let begin = want.len() as u64 + 8;
        want.extend(begin.to_be_bytes());
        assert_eq!(b, want);
        assert_eq!(layout.header_len, begin);
        assert_eq!(layout.file_len, begin + 8);
    }

    #[test]
    fn bad_headers_are_refused_with_the_reason() {
        let dim = |n: &str, len| Dimension {
            name: n.to_owned(),
            len,
        };
        let var = |n: &str, dims: Vec<usize>| Variable {
            name: n.to_owned(),
            dims,
            nc_type: NcType::Double,
            attrs: vec![],
        };
        let e = |h: Header| h.encode().unwrap_err();
        assert_eq!(
            e(Header {
                dims: vec![dim("a", 0)],
                ..Header::default()
            }),
            ClassicError::EmptyDimension("a".to_owned())
        );
        assert_eq!(
            e(Header {
                dims: vec![dim("a b", 1)],
                ..Header::default()
            }),
            ClassicError::BadName("a b".to_owned())
        );
        assert_eq!(
            e(Header {
                vars: vec![var("x", vec![]), var("x", vec![])],
                ..Header::default()
            }),
            ClassicError::DuplicateName("x".to_owned())
        );
        assert!(matches!(
            e(Header {
                vars: vec![var("x", vec![2])],
                ..Header::default()
            }),
            ClassicError::NoSuchDimension { dim: 2, .. }
        ));
        assert_eq!(
            e(Header {
                dims: vec![dim("a", u32::MAX), dim("b", 2)],
                vars: vec![var("x", vec![0, 1])],
                ..Header::default()
            }),
            ClassicError::TooLarge("x".to_owned())
        );
    }

    pub(crate) fn arb_name() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_.@+-]{0,12}"
    }

    pub(crate) fn arb_attr_value() -> impl Strategy<Value = AttrValue> {
        prop_oneof![
            "[ -~]{1,20}".prop_map(AttrValue::Text),
            proptest::collection::vec(any::<i8>(), 1..5).prop_map(AttrValue::Bytes),
            proptest::collection::vec(any::<i16>(), 1..5).prop_map(AttrValue::Shorts),
            proptest::collection::vec(any::<i32>(), 1..5).prop_map(AttrValue::Ints),
            proptest::collection::vec(-1e30f32..1e30, 1..5).prop_map(AttrValue::Floats),
            proptest::collection::vec(-1e300f64..1e300, 1..5).prop_map(AttrValue::Doubles),
        ]
    }

    /// Any header with unique names: up to 3 dimensions, 4 global attributes, 5 variables.
    pub(crate) fn arb_header() -> impl Strategy<Value = Header> {
        let dims = proptest::collection::btree_map(arb_name(), 1u32..6, 0..4);
        let attrs = proptest::collection::btree_map(arb_name(), arb_attr_value(), 0..5);
        (dims, attrs).prop_flat_map(|(dims, attrs)| {
            let dims: Vec<Dimension> = dims
                .into_iter()
                .map(|(name, len)| Dimension { name, len })
                .collect();
            let nd = dims.len();
            let types = prop_oneof![
                Just(NcType::Byte),
                Just(NcType::Char),
                Just(NcType::Short),
                Just(NcType::Int),
                Just(NcType::Float),
                Just(NcType::Double),
            ];
            let dim_ids = if nd == 0 {
                Just(Vec::new()).boxed()
            } else {
                proptest::collection::vec(0..nd, 0..3).boxed()
            };
            let var = (
                dim_ids,
                types,
                proptest::collection::btree_map(arb_name(), arb_attr_value(), 0..3),
            );
            let attrs: Vec<Attribute> = attrs
                .into_iter()
                .map(|(name, value)| Attribute { name, value })
                .collect();
            (
                Just(dims),
                Just(attrs),
                proptest::collection::btree_map(arb_name(), var, 0..6),
            )
                .prop_map(|(dims, attrs, vars)| Header {
                    dims,
                    attrs,
                    vars: vars
                        .into_iter()
                        .map(|(name, (dims, nc_type, attrs))| Variable {
                            name,
                            dims,
                            nc_type,
                            attrs: attrs
                                .into_iter()
                                .map(|(name, value)| Attribute { name, value })
                                .collect(),
                        })
                        .collect(),
                })
        })
    }

    proptest! {
        /// Walks the encoded header by the grammar (counting, not decoding values) and
        /// checks every offset the layout promised.
        #[test]
        fn every_header_has_the_structure_the_grammar_gives(h in arb_header()) {
            let (b, layout) = h.encode().unwrap();
            prop_assert_eq!(&b[..4], b"CDF\x02");
            prop_assert_eq!(b.len() as u64, layout.header_len);
            prop_assert_eq!(b.len() % 4, 0);
            let mut at = 8usize;
            let name_len = |at: usize| {
                let n = be_u32(&b, at) as usize;
                4 + n + padding(n as u64) as usize
            };
            // dim_list
            prop_assert_eq!(be_u32(&b, at), if h.dims.is_empty() { 0 } else { NC_DIMENSION });
            prop_assert_eq!(be_u32(&b, at + 4) as usize, h.dims.len());
            at += 8;
            for d in &h.dims {
                at += name_len(at);
                prop_assert_eq!(be_u32(&b, at), d.len);
                at += 4;
            }
            let skip_attrs = |mut at: usize, attrs: &[Attribute]| -> usize {
                at += 8;
                for a in attrs {
                    at += name_len(at);
                    let ty = a.value.nc_type();
                    assert_eq!(be_u32(&b, at), ty.code());
                    let n = be_u32(&b, at + 4) as u64;
                    assert_eq!(n as usize, a.value.len());
                    let bytes = n * ty.size();
                    at += 8 + (bytes + padding(bytes)) as usize;
                }
                at
            };
            at = skip_attrs(at, &h.attrs);
            prop_assert_eq!(be_u32(&b, at + 4) as usize, h.vars.len());
            at += 8;
            let mut expect_begin = layout.header_len;
            for (i, v) in h.vars.iter().enumerate() {
                at += name_len(at);
                prop_assert_eq!(be_u32(&b, at) as usize, v.dims.len());
                at += 4 + 4 * v.dims.len();
                at = skip_attrs(at, &v.attrs);
                prop_assert_eq!(be_u32(&b, at), v.nc_type.code());
                let vsize = u64::from(be_u32(&b, at + 4));
                let begin = u64::from_be_bytes(b[at + 8..at + 16].try_into().unwrap());
                prop_assert_eq!(vsize % 4, 0);
                prop_assert_eq!(vsize, layout.vars[i].padded_len);
                prop_assert_eq!(h.values(i) * v.nc_type.size(), layout.vars[i].data_len);
                prop_assert_eq!(begin, expect_begin);
                expect_begin += vsize;
                at += 16;
            }
            prop_assert_eq!(at, b.len());
            prop_assert_eq!(expect_begin, layout.file_len);
        }
    }
}
