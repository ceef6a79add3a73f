//! The SOQL subset handoff and its connectors send: a lexer, a parser into
//! [`Query`], binding against the schema (unknown objects and fields fail
//! the way Salesforce fails them) and evaluation over stored records.
//!
//! Supported: field lists with relationship paths (`Owner.Name`,
//! `Manager.ManagerId`), `COUNT()`, `WHERE` with `= != <> < <= > >=`,
//! `IN`/`NOT IN`, `LIKE`, `AND`/`OR`/`NOT` and parentheses; string, number,
//! boolean, `null`, date and unquoted dateTime literals plus the relative
//! literals `TODAY`, `YESTERDAY`, `TOMORROW`, `LAST_N_DAYS:n`,
//! `NEXT_N_DAYS:n`; `ORDER BY` with `ASC`/`DESC` and `NULLS FIRST/LAST`;
//! `LIMIT`; `OFFSET` (at most 2,000); child relationship subqueries in the
//! field list (`(SELECT … FROM Histories WHERE … ORDER BY … LIMIT n)`, one
//! level deep, bound through the parent's `childRelationships`; an unknown
//! relationship is `INVALID_TYPE`). Anything else is `MALFORMED_QUERY`.
//!
//! Polymorphic relationships (`Lead.Owner`, `Task.Who`) resolve to the
//! `Name` pseudo-object as in the real API, so `Owner.Type` and
//! `Owner.Name` work but `Owner.ManagerId` is `INVALID_FIELD`; query
//! `User.ManagerId` instead.

use std::cmp::Ordering;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::schema::{FieldType, SObjectDef, NAME_FIELDS};
use super::store::{normalise_id, parse_date, parse_datetime, to_millis, FieldRef, Record};

/// Largest OFFSET Salesforce accepts.
pub const MAX_OFFSET: u64 = 2000;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    /// A number, date or dateTime literal, classified by the parser.
    Lit(String),
    Comma,
    Dot,
    LParen,
    RParen,
    Colon,
    Op(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    tok: Tok,
    /// Byte offset in the query text, for the caret in error messages.
    at: usize,
}

/// A parse failure at byte `at` of the query text.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub at: usize,
    pub message: String,
}

fn lex(q: &str) -> Result<Vec<Token>, SyntaxError> {
    let bytes = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        let start = i;
        match c {
            c if c.is_whitespace() => i += 1,
            ',' => {
                out.push(Token { tok: Tok::Comma, at: i });
                i += 1
            }
            '.' => {
                out.push(Token { tok: Tok::Dot, at: i });
                i += 1
            }
            '(' => {
                out.push(Token { tok: Tok::LParen, at: i });
                i += 1
            }
            ')' => {
                out.push(Token { tok: Tok::RParen, at: i });
                i += 1
            }
            ':' => {
                out.push(Token { tok: Tok::Colon, at: i });
                i += 1
            }
            '=' => {
                out.push(Token { tok: Tok::Op("="), at: i });
                i += 1
            }
            '!' if bytes.get(i + 1) == Some(&b'=') => {
                out.push(Token { tok: Tok::Op("!="), at: i });
                i += 2
            }
            '<' => {
                let (op, n) = match bytes.get(i + 1) {
                    Some(b'=') => ("<=", 2),
                    Some(b'>') => ("!=", 2),
                    _ => ("<", 1),
                };
                out.push(Token { tok: Tok::Op(op), at: i });
                i += n
            }
            '>' => {
                let (op, n) = if bytes.get(i + 1) == Some(&b'=') { (">=", 2) } else { (">", 1) };
                out.push(Token { tok: Tok::Op(op), at: i });
                i += n
            }
            '\'' => {
                i += 1;
                let mut s = String::new();
                loop {
                    match bytes.get(i) {
                        None => return Err(SyntaxError { at: start, message: "unterminated string literal".into() }),
                        Some(b'\\') => {
                            let esc = bytes.get(i + 1).copied().unwrap_or(b'\\');
                            s.push(match esc {
                                b'n' => '\n',
                                b't' => '\t',
                                other => other as char,
                            });
                            i += 2;
                        }
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(_) => {
                            // Push the whole UTF-8 character.
                            let ch = q[i..].chars().next().unwrap_or('?');
                            s.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                out.push(Token { tok: Tok::Str(s), at: start });
            }
            c if c.is_ascii_digit() || (c == '-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) => {
                i += 1;
                while i < bytes.len() {
                    let d = bytes[i] as char;
                    let continues =
                        d.is_ascii_alphanumeric() || d == '.' || d == ':' || ((d == '-' || d == '+') && i > start + 1);
                    if !continues {
                        break;
                    }
                    i += 1;
                }
                out.push(Token { tok: Tok::Lit(q[start..i].to_string()), at: start });
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < bytes.len() && ((bytes[i] as char).is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                out.push(Token { tok: Tok::Word(q[start..i].to_string()), at: start });
            }
            other => return Err(SyntaxError { at: i, message: format!("unexpected token: '{other}'") }),
        }
    }
    Ok(out)
}

/// A literal in a condition, before binding to a field type.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    /// A relative date literal (`TODAY`, `LAST_N_DAYS:7`), resolved to days
    /// counted back (negative) or forward from today: `[from, to)`.
    Relative {
        from_days: i64,
        to_days: i64,
        text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// Whether two values standing in order `o` (actual against wanted) pass.
    fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::Ne => o != Ordering::Equal,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge => o != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Cmp { path: Vec<String>, op: CmpOp, value: Literal, at: usize },
    In { path: Vec<String>, values: Vec<Literal>, negated: bool, at: usize },
    Like { path: Vec<String>, pattern: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub path: Vec<String>,
    pub descending: bool,
    pub nulls_last: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    Field(Vec<String>),
    /// `COUNT()`: only `totalSize` is answered.
    CountAll,
    /// A child relationship subquery: `(SELECT … FROM Histories …)`; its
    /// `from` is the relationship name.
    Child(Box<Query>),
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: String,
    pub filter: Option<Cond>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

impl Query {
    pub fn is_count(&self) -> bool {
        self.select.iter().any(|s| matches!(s, SelectItem::CountAll))
    }
}

struct Parser<'a> {
    toks: Vec<Token>,
    pos: usize,
    len: usize,
    _src: &'a str,
}

fn is_kw(t: Option<&Token>, kw: &str) -> bool {
    matches!(t, Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(kw))
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn at(&self) -> usize {
        self.peek().map_or(self.len, |t| t.at)
    }

    fn unexpected(&self) -> SyntaxError {
        match self.peek() {
            Some(t) => SyntaxError { at: t.at, message: format!("unexpected token: '{}'", tok_text(&t.tok)) },
            None => SyntaxError { at: self.len, message: "unexpected token: '<EOF>'".into() },
        }
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if is_kw(self.peek(), kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), SyntaxError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek().map(|t| &t.tok) == Some(tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> Result<String, SyntaxError> {
        match self.peek() {
            Some(Token { tok: Tok::Word(w), .. }) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn path(&mut self) -> Result<Vec<String>, SyntaxError> {
        let mut p = vec![self.word()?];
        while self.eat(&Tok::Dot) {
            p.push(self.word()?);
        }
        Ok(p)
    }

    /// A whole query, or (`nested`) a subquery, which ends at its `)`.
    fn query(&mut self, nested: bool) -> Result<Query, SyntaxError> {
        self.expect_kw("SELECT")?;
        let mut select = Vec::new();
        loop {
            if is_kw(self.peek(), "COUNT") && self.toks.get(self.pos + 1).map(|t| &t.tok) == Some(&Tok::LParen) {
                self.pos += 2;
                if !self.eat(&Tok::RParen) {
                    return Err(self.unexpected());
                }
                select.push(SelectItem::CountAll);
            } else if self.peek().map(|t| &t.tok) == Some(&Tok::LParen) {
                let at = self.at();
                if nested {
                    return Err(SyntaxError {
                        at,
                        message: "Nesting of semi join sub-selects is not supported".into(),
                    });
                }
                self.pos += 1;
                let sub = self.query(true)?;
                if !self.eat(&Tok::RParen) {
                    return Err(self.unexpected());
                }
                if sub.offset.is_some() {
                    return Err(SyntaxError {
                        at,
                        message: "OFFSET is not supported in a child relationship subquery".into(),
                    });
                }
                if sub.is_count() {
                    return Err(SyntaxError {
                        at,
                        message: "COUNT() is not supported in a child relationship subquery".into(),
                    });
                }
                select.push(SelectItem::Child(Box::new(sub)));
            } else {
                select.push(SelectItem::Field(self.path()?));
            }
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect_kw("FROM")?;
        let from = self.word()?;
        let filter = if self.eat_kw("WHERE") { Some(self.or()?) } else { None };
        let mut order_by = Vec::new();
        if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            loop {
                let path = self.path()?;
                let descending = if self.eat_kw("DESC") {
                    true
                } else {
                    self.eat_kw("ASC");
                    false
                };
                let mut nulls_last = descending;
                if self.eat_kw("NULLS") {
                    if self.eat_kw("LAST") {
                        nulls_last = true;
                    } else {
                        self.expect_kw("FIRST")?;
                        nulls_last = false;
                    }
                }
                order_by.push(OrderItem { path, descending, nulls_last });
                if !self.eat(&Tok::Comma) {
                    break;
                }
            }
        }
        let limit = if self.eat_kw("LIMIT") { Some(self.unsigned()?) } else { None };
        let offset = if self.eat_kw("OFFSET") { Some(self.unsigned()?) } else { None };
        let at_end = match self.peek() {
            None => !nested,
            Some(t) => nested && t.tok == Tok::RParen,
        };
        if !at_end {
            return Err(self.unexpected());
        }
        Ok(Query { select, from, filter, order_by, limit, offset })
    }

    fn unsigned(&mut self) -> Result<u64, SyntaxError> {
        match self.peek() {
            Some(Token { tok: Tok::Lit(s), .. }) => match s.parse::<u64>() {
                Ok(n) => {
                    self.pos += 1;
                    Ok(n)
                }
                Err(_) => Err(self.unexpected()),
            },
            _ => Err(self.unexpected()),
        }
    }

    fn or(&mut self) -> Result<Cond, SyntaxError> {
        let mut left = self.and()?;
        while self.eat_kw("OR") {
            let right = self.and()?;
            left = Cond::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond, SyntaxError> {
        let mut left = self.not()?;
        while self.eat_kw("AND") {
            let right = self.not()?;
            left = Cond::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Cond, SyntaxError> {
        if self.eat_kw("NOT") {
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        if self.eat(&Tok::LParen) {
            let c = self.or()?;
            if !self.eat(&Tok::RParen) {
                return Err(self.unexpected());
            }
            return Ok(c);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Cond, SyntaxError> {
        let at = self.at();
        let path = self.path()?;
        if self.eat_kw("LIKE") {
            return match self.literal()? {
                Literal::String(pattern) => Ok(Cond::Like { path, pattern }),
                _ => Err(SyntaxError { at, message: "LIKE needs a string literal".into() }),
            };
        }
        let negated = if is_kw(self.peek(), "NOT") && is_kw(self.toks.get(self.pos + 1), "IN") {
            self.pos += 1;
            true
        } else {
            false
        };
        if self.eat_kw("IN") {
            if !self.eat(&Tok::LParen) {
                return Err(self.unexpected());
            }
            let mut values = vec![self.literal()?];
            while self.eat(&Tok::Comma) {
                values.push(self.literal()?);
            }
            if !self.eat(&Tok::RParen) {
                return Err(self.unexpected());
            }
            return Ok(Cond::In { path, values, negated, at });
        }
        let op = match self.peek().map(|t| &t.tok) {
            Some(Tok::Op(op)) => match *op {
                "=" => CmpOp::Eq,
                "!=" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                _ => CmpOp::Ge,
            },
            _ => return Err(self.unexpected()),
        };
        self.pos += 1;
        let value = self.literal()?;
        Ok(Cond::Cmp { path, op, value, at })
    }

    fn literal(&mut self) -> Result<Literal, SyntaxError> {
        let t = self.peek().cloned().ok_or_else(|| self.unexpected())?;
        let lit = match &t.tok {
            Tok::Str(s) => Literal::String(s.clone()),
            Tok::Lit(s) => classify_literal(s)
                .ok_or_else(|| SyntaxError { at: t.at, message: format!("unexpected token: '{s}'") })?,
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => Literal::Null,
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Tok::Word(w) => {
                let upper = w.to_ascii_uppercase();
                let fixed = match upper.as_str() {
                    "TODAY" => Some((0, 1)),
                    "YESTERDAY" => Some((-1, 0)),
                    "TOMORROW" => Some((1, 2)),
                    _ => None,
                };
                if let Some((from_days, to_days)) = fixed {
                    Literal::Relative { from_days, to_days, text: upper }
                } else if upper == "LAST_N_DAYS" || upper == "NEXT_N_DAYS" {
                    self.pos += 1;
                    if !self.eat(&Tok::Colon) {
                        return Err(self.unexpected());
                    }
                    let n = self.unsigned()? as i64;
                    let text = format!("{upper}:{n}");
                    // LAST_N_DAYS:n covers the n days before today and today.
                    return Ok(if upper == "LAST_N_DAYS" {
                        Literal::Relative { from_days: -n, to_days: 1, text }
                    } else {
                        Literal::Relative { from_days: 0, to_days: n + 1, text }
                    });
                } else {
                    return Err(SyntaxError { at: t.at, message: format!("unexpected token: '{w}'") });
                }
            }
            _ => return Err(self.unexpected()),
        };
        self.pos += 1;
        Ok(lit)
    }
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Word(w) | Tok::Lit(w) => w.clone(),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Comma => ",".into(),
        Tok::Dot => ".".into(),
        Tok::LParen => "(".into(),
        Tok::RParen => ")".into(),
        Tok::Colon => ":".into(),
        Tok::Op(op) => op.to_string(),
    }
}

/// Numbers, `YYYY-MM-DD` dates and unquoted dateTimes with `Z` or an offset.
fn classify_literal(s: &str) -> Option<Literal> {
    if s.len() >= 10 && s.as_bytes().get(4) == Some(&b'-') && !s.starts_with('-') {
        if s.len() == 10 {
            return parse_date(s).map(Literal::Date);
        }
        // dateTime literals must carry a zone (Z or ±hh:mm).
        let has_zone = s.ends_with('Z') || s[10..].contains('+') || s[10..].contains('-');
        if !has_zone {
            return None;
        }
        return parse_datetime(s).map(Literal::DateTime);
    }
    s.parse::<f64>().ok().map(Literal::Number)
}

/// Parse `q` or answer the `MALFORMED_QUERY` body Salesforce would.
pub fn parse(q: &str) -> Result<Query, ApiError> {
    let toks = lex(q).map_err(|e| malformed(q, &e))?;
    let mut p = Parser { toks, pos: 0, len: q.len(), _src: q };
    p.query(false).map_err(|e| malformed(q, &e))
}

/// Salesforce's MALFORMED_QUERY message: the query, a caret under the
/// offending token, its row and column, and what was wrong.
fn malformed(q: &str, e: &SyntaxError) -> ApiError {
    let upto = &q[..e.at.min(q.len())];
    let row = upto.matches('\n').count() + 1;
    let line_start = upto.rfind('\n').map_or(0, |i| i + 1);
    let col = e.at - line_start + 1;
    let line = q[line_start..].lines().next().unwrap_or("");
    ApiError::malformed_query(format!(
        "\n{line}\n{caret:>width$}\nERROR at Row:{row}:Column:{col}\n{msg}",
        caret = "^",
        width = col,
        msg = e.message
    ))
}

/// What the evaluator needs from the store.
pub trait Db {
    fn object(&self, name: &str) -> Option<&SObjectDef>;
    /// The record with this id, whatever its type.
    fn lookup(&self, id: &str) -> Option<(&SObjectDef, &Record)>;
    /// Rows of `child` whose reference `field` names `parent`.
    fn children<'a>(&'a self, child: &str, field: &str, parent: &str) -> Vec<(&'a str, &'a Record)>;
}

/// Whether a row is seen by `query` (live, and for activities not
/// archived) or, with `include_deleted`, by `queryAll` (every row).
pub fn is_visible(def: &SObjectDef, rec: &Record, include_deleted: bool) -> bool {
    let flag = |f: &str| rec.get(f).and_then(FieldRef::as_bool).unwrap_or(false);
    include_deleted || !(flag("IsDeleted") || (def.archivable && flag("IsArchived")))
}

/// Where a path leads after binding.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    /// Through reference field `field` into object `target` (`None` for a
    /// polymorphic reference, read through the `Name` pseudo-object);
    /// `rel` is the relationship name as the schema spells it.
    Rel {
        field: String,
        rel: String,
        target: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct BoundPath {
    steps: Vec<Step>,
    kind: FieldType,
}

/// A query checked against the schema, ready to run.
#[derive(Debug, Clone)]
pub struct Bound {
    pub query: Query,
    /// The object's API name as the schema spells it.
    pub object: String,
    select: Vec<BoundPath>,
    /// Child relationship subqueries, in SELECT order.
    pub children: Vec<ChildSelect>,
    filter: Option<BoundCond>,
    order: Vec<(BoundPath, bool, bool)>,
    /// `queryAll`: deleted (and archived) rows are seen, children too.
    pub include_deleted: bool,
}

/// A bound child relationship subquery.
#[derive(Debug, Clone)]
pub struct ChildSelect {
    /// The relationship name as the schema spells it: the key the nested
    /// result goes under.
    pub name: String,
    /// The child's reference field naming the parent (`LeadId`).
    pub field: String,
    /// The subquery bound against the child object.
    pub bound: Bound,
}

#[derive(Debug, Clone)]
enum BoundCond {
    And(Box<BoundCond>, Box<BoundCond>),
    Or(Box<BoundCond>, Box<BoundCond>),
    Not(Box<BoundCond>),
    Cmp { path: BoundPath, op: CmpOp, value: Typed },
    In { path: BoundPath, values: Vec<Typed>, negated: bool },
    Like { path: BoundPath, pattern: String },
}

/// A literal coerced to its field's type.
#[derive(Debug, Clone, PartialEq)]
enum Typed {
    Null,
    Text(String),
    Number(f64),
    Bool(bool),
    Date(NaiveDate),
    DateTime(i64),
    /// `[from, to)` in the field's own unit (days or ms).
    Range(i64, i64),
}

fn name_field_type(f: &str) -> FieldType {
    match f {
        "IsActive" => FieldType::Boolean,
        "Id" | "UserRoleId" | "ProfileId" => FieldType::Reference,
        "Type" => FieldType::Picklist,
        _ => FieldType::String,
    }
}

fn bind_path(db: &dyn Db, obj: &SObjectDef, path: &[String]) -> Result<BoundPath, ApiError> {
    let no_column = |name: &str, entity: &str| {
        ApiError::invalid_field(format!(
            "No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
        ))
    };
    let mut steps = Vec::new();
    let mut current = obj;
    for (i, seg) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        if last {
            let f = current.field(seg).ok_or_else(|| no_column(seg, current.name))?;
            steps.push(Step::Field(f.name.clone()));
            return Ok(BoundPath { steps, kind: f.kind });
        }
        let f = current
            .relationship(seg)
            .ok_or_else(|| ApiError::invalid_field(format!("Didn't understand relationship '{seg}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.")))?;
        let rel = f.relationship_name().unwrap_or_default();
        if f.is_polymorphic() {
            // Only one more segment, and it must be a Name field.
            if i + 2 != path.len() {
                return Err(no_column(&path[i + 1], "Name"));
            }
            let leaf = &path[i + 1];
            let name =
                NAME_FIELDS.iter().find(|n| n.eq_ignore_ascii_case(leaf)).ok_or_else(|| no_column(leaf, "Name"))?;
            steps.push(Step::Rel { field: f.name.clone(), rel, target: None });
            steps.push(Step::Field(name.to_string()));
            return Ok(BoundPath { steps, kind: name_field_type(name) });
        }
        let target_name = f.reference_to.first().cloned().unwrap_or_default();
        let target = db.object(&target_name).ok_or_else(|| no_column(seg, current.name))?;
        steps.push(Step::Rel { field: f.name.clone(), rel, target: Some(target.name.to_string()) });
        current = target;
    }
    Err(ApiError::malformed_query("empty field path"))
}

fn filter_type_error(field: &str, kind: FieldType) -> ApiError {
    let (ty, quotes) = match kind {
        FieldType::Datetime => ("dateTime", " and should not be enclosed in quotes"),
        FieldType::Date => ("date", " and should not be enclosed in quotes"),
        FieldType::Boolean => ("boolean", " and should not be enclosed in quotes"),
        FieldType::Double | FieldType::Int => ("number", " and should not be enclosed in quotes"),
        _ => ("string", " and should be enclosed in quotes"),
    };
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_QUERY_FILTER_OPERATOR",
        format!("value of filter criterion for field '{field}' must be of type {ty}{quotes}"),
    )
}

fn coerce(
    lit: &Literal,
    path: &BoundPath,
    name: &str,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Typed, ApiError> {
    let _ = now;
    let kind = path.kind;
    let bad = || filter_type_error(name, kind);
    Ok(match (lit, kind) {
        (Literal::Null, _) => Typed::Null,
        (Literal::String(s), k) if k.is_textual() => {
            if matches!(k, FieldType::Id | FieldType::Reference) {
                Typed::Text(normalise_id(s))
            } else {
                Typed::Text(s.clone())
            }
        }
        (Literal::Number(n), FieldType::Double | FieldType::Int) => Typed::Number(*n),
        (Literal::Bool(b), FieldType::Boolean) => Typed::Bool(*b),
        (Literal::Date(d), FieldType::Date) => Typed::Date(*d),
        (Literal::DateTime(dt), FieldType::Datetime) => Typed::DateTime(to_millis(*dt)),
        (Literal::Relative { from_days, to_days, .. }, FieldType::Date) => {
            let base = today.num_days_from_ce() as i64;
            Typed::Range(base + from_days, base + to_days)
        }
        (Literal::Relative { from_days, to_days, .. }, FieldType::Datetime) => {
            let midnight = today.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
            Typed::Range(
                to_millis(midnight + Duration::days(*from_days)),
                to_millis(midnight + Duration::days(*to_days)),
            )
        }
        _ => return Err(bad()),
    })
}

use chrono::Datelike;

fn bind_cond(db: &dyn Db, obj: &SObjectDef, c: &Cond, now: DateTime<Utc>) -> Result<BoundCond, ApiError> {
    let today = now.date_naive();
    Ok(match c {
        Cond::And(a, b) => BoundCond::And(Box::new(bind_cond(db, obj, a, now)?), Box::new(bind_cond(db, obj, b, now)?)),
        Cond::Or(a, b) => BoundCond::Or(Box::new(bind_cond(db, obj, a, now)?), Box::new(bind_cond(db, obj, b, now)?)),
        Cond::Not(a) => BoundCond::Not(Box::new(bind_cond(db, obj, a, now)?)),
        Cond::Cmp { path, op, value, .. } => {
            let bp = bind_path(db, obj, path)?;
            let name = path.join(".");
            let value = coerce(value, &bp, &name, today, now)?;
            if value == Typed::Null && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_QUERY_FILTER_OPERATOR",
                    format!("invalid operator on null value for field '{name}'"),
                ));
            }
            BoundCond::Cmp { path: bp, op: *op, value }
        }
        Cond::In { path, values, negated, .. } => {
            let bp = bind_path(db, obj, path)?;
            let name = path.join(".");
            let values = values.iter().map(|v| coerce(v, &bp, &name, today, now)).collect::<Result<Vec<_>, _>>()?;
            BoundCond::In { path: bp, values, negated: *negated }
        }
        Cond::Like { path, pattern } => {
            let bp = bind_path(db, obj, path)?;
            if !bp.kind.is_textual() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_QUERY_FILTER_OPERATOR",
                    format!("invalid operator on field '{}'", path.join(".")),
                ));
            }
            BoundCond::Like { path: bp, pattern: pattern.clone() }
        }
    })
}

/// Check `q` against the schema at simulated time `now` (for relative
/// date literals).
pub fn bind(db: &dyn Db, q: Query, now: DateTime<Utc>) -> Result<Bound, ApiError> {
    let obj = db.object(&q.from).ok_or_else(|| {
        ApiError::invalid_type(format!(
            "\n{from}\n^\nERROR at Row:1:Column:1\nsObject type '{from}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
            from = q.from
        ))
    })?;
    bind_on(db, obj, q, now)
}

fn bind_on(db: &dyn Db, obj: &SObjectDef, q: Query, now: DateTime<Utc>) -> Result<Bound, ApiError> {
    let mut children = Vec::new();
    for item in &q.select {
        let SelectItem::Child(sub) = item else { continue };
        let rel = obj.child_relationship(&sub.from).ok_or_else(|| {
            ApiError::invalid_type(format!(
                "Didn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.",
                sub.from
            ))
        })?;
        let child = db
            .object(rel.child)
            .ok_or_else(|| ApiError::invalid_type(format!("sObject type '{}' is not supported.", rel.child)))?;
        let bound = bind_on(db, child, (**sub).clone(), now)?;
        children.push(ChildSelect { name: rel.name.to_string(), field: rel.field.to_string(), bound });
    }
    if q.offset.is_some_and(|o| o > MAX_OFFSET) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "NUMBER_OUTSIDE_VALID_RANGE",
            format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
        ));
    }
    let mut select = Vec::new();
    for item in &q.select {
        if let SelectItem::Field(p) = item {
            select.push(bind_path(db, obj, p)?);
        }
    }
    let filter = q.filter.as_ref().map(|c| bind_cond(db, obj, c, now)).transpose()?;
    let order = q
        .order_by
        .iter()
        .map(|o| Ok((bind_path(db, obj, &o.path)?, o.descending, o.nulls_last)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Bound { object: obj.name.to_string(), query: q, select, children, filter, order, include_deleted: false })
}

/// The value at the end of a path: `None` when a relationship on the way is
/// empty (rendered as a null relationship object).
fn resolve<'a>(db: &'a dyn Db, rec: &'a Record, steps: &[Step]) -> Option<Value> {
    match steps.first()? {
        Step::Field(f) => Some(rec.value(f)),
        Step::Rel { field, target, .. } => {
            let id = rec.get(field)?.as_str()?;
            let (def, target_rec) = db.lookup(id)?;
            match target {
                Some(_) => resolve(db, target_rec, &steps[1..]),
                None => match steps.get(1) {
                    Some(Step::Field(leaf)) => Some(name_value(def, target_rec, leaf)),
                    _ => None,
                },
            }
        }
    }
}

/// A field of the `Name` pseudo-object for a record of type `def`.
fn name_value(def: &SObjectDef, rec: &Record, leaf: &str) -> Value {
    match leaf {
        // Queues are Groups, but the Name pseudo-object calls them "Queue".
        "Type" if def.name == "Group" => rec.get("Type").map_or_else(|| json!("Queue"), FieldRef::to_value),
        "Type" => json!(def.name),
        "Name" => match rec.get("Name") {
            Some(v) => v.to_value(),
            None => {
                let first = rec.get("FirstName").and_then(FieldRef::as_str).unwrap_or("");
                let last = rec.get("LastName").and_then(FieldRef::as_str).unwrap_or("");
                json!(format!("{first} {last}").trim().to_string())
            }
        },
        other => rec.value(other),
    }
}

fn leaf_value(db: &dyn Db, rec: &Record, p: &BoundPath) -> Value {
    resolve(db, rec, &p.steps).unwrap_or(Value::Null)
}

/// A computed value in the comparable form of its field type.
fn typed_of(v: &Value, kind: FieldType) -> Typed {
    match v {
        Value::Null => Typed::Null,
        Value::String(s) => typed_of_field(FieldRef::Str(s), kind),
        Value::Number(n) => Typed::Number(n.as_f64().unwrap_or(0.0)),
        Value::Bool(b) => Typed::Bool(*b),
        _ => Typed::Null,
    }
}

/// A stored value in the comparable form of its field type.
fn typed_of_field(v: FieldRef<'_>, kind: FieldType) -> Typed {
    match (v, kind) {
        (FieldRef::Str(s), FieldType::Datetime) => {
            parse_datetime(s).map_or(Typed::Null, |d| Typed::DateTime(to_millis(d)))
        }
        (FieldRef::Str(s), FieldType::Date) => parse_date(s).map_or(Typed::Null, Typed::Date),
        (FieldRef::Str(s), FieldType::Id | FieldType::Reference) => Typed::Text(normalise_id(s)),
        (FieldRef::Str(s), _) => Typed::Text(s.to_string()),
        (FieldRef::Int(_) | FieldRef::Float(_), _) => Typed::Number(v.as_f64().unwrap_or(0.0)),
        (FieldRef::Bool(b), _) => Typed::Bool(b),
        (FieldRef::Other(v), _) => typed_of(v, kind),
    }
}

/// Case-insensitive order, without allocating for ASCII text.
fn cmp_ignoring_case(x: &str, y: &str) -> Ordering {
    if x.is_ascii() && y.is_ascii() {
        x.bytes().map(|c| c.to_ascii_lowercase()).cmp(y.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        x.to_lowercase().cmp(&y.to_lowercase())
    }
}

fn cmp_typed(a: &Typed, b: &Typed, case_insensitive: bool) -> Option<Ordering> {
    match (a, b) {
        (Typed::Text(x), Typed::Text(y)) if case_insensitive => Some(cmp_ignoring_case(x, y)),
        (Typed::Text(x), Typed::Text(y)) => Some(x.cmp(y)),
        (Typed::Number(x), Typed::Number(y)) => x.partial_cmp(y),
        (Typed::Bool(x), Typed::Bool(y)) => Some(x.cmp(y)),
        (Typed::Date(x), Typed::Date(y)) => Some(x.cmp(y)),
        (Typed::DateTime(x), Typed::DateTime(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn unit_of(v: &Typed) -> Option<i64> {
    match v {
        Typed::Date(d) => Some(d.num_days_from_ce() as i64),
        Typed::DateTime(ms) => Some(*ms),
        _ => None,
    }
}

fn compare(actual: &Typed, op: CmpOp, want: &Typed, textual_ci: bool) -> bool {
    if let Typed::Range(from, to) = want {
        let Some(x) = unit_of(actual) else { return op == CmpOp::Ne };
        return match op {
            CmpOp::Eq => x >= *from && x < *to,
            CmpOp::Ne => !(x >= *from && x < *to),
            CmpOp::Lt => x < *from,
            CmpOp::Le => x < *to,
            CmpOp::Gt => x >= *to,
            CmpOp::Ge => x >= *from,
        };
    }
    match (actual, want) {
        (Typed::Null, Typed::Null) => op == CmpOp::Eq,
        (Typed::Null, _) | (_, Typed::Null) => op == CmpOp::Ne,
        _ => cmp_typed(actual, want, textual_ci).is_some_and(|o| op.holds(o)),
    }
}

fn like(value: &str, pattern: &str) -> bool {
    // `%` any run, `_` one character; case-insensitive as in SOQL.
    fn go(v: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('%', rest)) => (0..=v.len()).any(|i| go(&v[i..], rest)),
            Some(('_', rest)) => !v.is_empty() && go(&v[1..], rest),
            Some((c, rest)) => v.first().is_some_and(|x| x == c) && go(&v[1..], rest),
        }
    }
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    go(&v, &p)
}

/// The stored value of a path that names a field of the row itself
/// (`Some(None)`: the field is null).
fn direct<'a>(rec: &'a Record, path: &BoundPath) -> Option<Option<FieldRef<'a>>> {
    match path.steps.as_slice() {
        [Step::Field(f)] => Some(rec.get(f)),
        _ => None,
    }
}

/// A path's value in comparable form, read in place when it is the row's own field.
fn actual_of(db: &dyn Db, rec: &Record, path: &BoundPath) -> Typed {
    match direct(rec, path) {
        Some(Some(v)) => typed_of_field(v, path.kind),
        Some(None) => Typed::Null,
        None => typed_of(&leaf_value(db, rec, path), path.kind),
    }
}

/// A text comparison on the row's own field, without copying the value;
/// `None` when the general path applies (relationships, non-text, nulls).
fn direct_text_cmp(rec: &Record, path: &BoundPath, op: CmpOp, want: &Typed) -> Option<bool> {
    let (Some(Some(FieldRef::Str(actual))), Typed::Text(want)) = (direct(rec, path), want) else { return None };
    let o = match path.kind {
        FieldType::Id | FieldType::Reference if actual.len() == want.len() => actual.cmp(want.as_str()),
        FieldType::Id | FieldType::Reference => normalise_id(actual).cmp(want),
        k if k.is_textual() => cmp_ignoring_case(actual, want),
        _ => return None,
    };
    Some(op.holds(o))
}

fn eval(db: &dyn Db, rec: &Record, c: &BoundCond) -> bool {
    match c {
        BoundCond::And(a, b) => eval(db, rec, a) && eval(db, rec, b),
        BoundCond::Or(a, b) => eval(db, rec, a) || eval(db, rec, b),
        BoundCond::Not(a) => !eval(db, rec, a),
        BoundCond::Cmp { path, op, value } => {
            if let Some(hit) = direct_text_cmp(rec, path, *op, value) {
                return hit;
            }
            let actual = actual_of(db, rec, path);
            let ci = !matches!(path.kind, FieldType::Id | FieldType::Reference);
            compare(&actual, *op, value, ci)
        }
        BoundCond::In { path, values, negated } => {
            let direct: Option<Vec<bool>> = values.iter().map(|v| direct_text_cmp(rec, path, CmpOp::Eq, v)).collect();
            if let Some(hits) = direct {
                return hits.contains(&true) != *negated;
            }
            let actual = actual_of(db, rec, path);
            let ci = !matches!(path.kind, FieldType::Id | FieldType::Reference);
            let hit = values.iter().any(|v| compare(&actual, CmpOp::Eq, v, ci));
            hit != *negated
        }
        BoundCond::Like { path, pattern } => match leaf_value(db, rec, path) {
            Value::String(s) => like(&s, pattern),
            _ => false,
        },
    }
}

impl Bound {
    /// Whether `rec` passes the WHERE clause.
    pub fn matches(&self, db: &dyn Db, rec: &Record) -> bool {
        self.filter.as_ref().is_none_or(|c| eval(db, rec, c))
    }

    /// A `SystemModstamp` range implied by top-level `AND` conditions, so the
    /// caller can scan the modstamp index instead of every row. Bounds are
    /// inclusive; the full filter still runs on every candidate.
    pub fn modstamp_range(&self) -> (Option<i64>, Option<i64>) {
        fn walk(c: &BoundCond, lo: &mut Option<i64>, hi: &mut Option<i64>) {
            match c {
                BoundCond::And(a, b) => {
                    walk(a, lo, hi);
                    walk(b, lo, hi);
                }
                BoundCond::Cmp { path, op, value: Typed::DateTime(ms) }
                    if path.steps == [Step::Field("SystemModstamp".into())] =>
                {
                    let ms = *ms;
                    match op {
                        CmpOp::Gt | CmpOp::Ge => *lo = Some(lo.map_or(ms, |l| l.max(ms))),
                        CmpOp::Lt | CmpOp::Le => *hi = Some(hi.map_or(ms, |h| h.min(ms))),
                        CmpOp::Eq => {
                            *lo = Some(lo.map_or(ms, |l| l.max(ms)));
                            *hi = Some(hi.map_or(ms, |h| h.min(ms)));
                        }
                        CmpOp::Ne => {}
                    }
                }
                _ => {}
            }
        }
        let (mut lo, mut hi) = (None, None);
        if let Some(c) = &self.filter {
            walk(c, &mut lo, &mut hi);
        }
        (lo, hi)
    }

    /// Whether the ORDER BY is exactly `SystemModstamp[, Id]` ascending, the
    /// order the modstamp index already yields.
    pub fn ordered_by_modstamp(&self) -> bool {
        let names: Vec<(&[Step], bool)> = self.order.iter().map(|(p, d, _)| (p.steps.as_slice(), *d)).collect();
        let ms = [Step::Field("SystemModstamp".into())];
        let id = [Step::Field("Id".into())];
        match names.as_slice() {
            [(a, false)] => *a == ms,
            [(a, false), (b, false)] => *a == ms && *b == id,
            _ => false,
        }
    }

    /// Sort `ids` (all rows of this object) by the ORDER BY clause.
    pub fn sort(&self, db: &dyn Db, rows: &mut [(String, &Record)]) {
        if self.order.is_empty() {
            return;
        }
        rows.sort_by(|(ida, a), (idb, b)| {
            for (path, desc, nulls_last) in &self.order {
                let va = actual_of(db, a, path);
                let vb = actual_of(db, b, path);
                let o = match (&va, &vb) {
                    (Typed::Null, Typed::Null) => Ordering::Equal,
                    (Typed::Null, _) => {
                        if *nulls_last {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    (_, Typed::Null) => {
                        if *nulls_last {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    _ => {
                        let o = cmp_typed(&va, &vb, true).unwrap_or(Ordering::Equal);
                        if *desc {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            ida.cmp(idb)
        });
    }

    /// Set `queryAll` visibility on this query and its subqueries.
    pub fn with_deleted(mut self, include_deleted: bool) -> Self {
        self.include_deleted = include_deleted;
        self.children = self
            .children
            .into_iter()
            .map(|c| ChildSelect { bound: c.bound.with_deleted(include_deleted), ..c })
            .collect();
        self
    }

    /// The ids of the children of `parent` that subquery `child` answers:
    /// visible, matching its WHERE, in its ORDER BY (then id), at most its LIMIT.
    pub fn child_ids(&self, db: &dyn Db, child: usize, parent: &str) -> Vec<String> {
        let Some(c) = self.children.get(child) else { return Vec::new() };
        let Some(def) = db.object(&c.bound.object) else { return Vec::new() };
        let mut rows: Vec<(String, &Record)> = db
            .children(&c.bound.object, &c.field, parent)
            .into_iter()
            .filter(|(_, r)| is_visible(def, r, c.bound.include_deleted) && c.bound.matches(db, r))
            .map(|(id, r)| (id.to_string(), r))
            .collect();
        c.bound.sort(db, &mut rows);
        let limit = c.bound.query.limit.map_or(usize::MAX, |l| l as usize);
        rows.into_iter().take(limit).map(|(id, _)| id).collect()
    }

    /// Each selected field as the keys that lead to it in a rendered row
    /// (`["Owner", "Name"]`), with its type: the columns of a Bulk API
    /// result.
    pub fn column_paths(&self) -> Vec<(Vec<String>, FieldType)> {
        self.select
            .iter()
            .map(|p| {
                let keys = p
                    .steps
                    .iter()
                    .map(|s| match s {
                        Step::Field(f) => f.clone(),
                        Step::Rel { rel, .. } => rel.clone(),
                    })
                    .collect();
                (keys, p.kind)
            })
            .collect()
    }

    /// One result row as Salesforce renders it: `attributes`, then the
    /// selected fields in SELECT order, relationship paths nested. Child
    /// subqueries are not rendered here (the caller pages them).
    pub fn render(&self, db: &dyn Db, id: &str, rec: &Record, version: &str) -> Value {
        let mut out = Map::new();
        out.insert("attributes".into(), attributes(&self.object, id, version));
        for p in &self.select {
            insert_path(db, &mut out, rec, &p.steps, version);
        }
        Value::Object(out)
    }
}

fn attributes(ty: &str, id: &str, version: &str) -> Value {
    json!({ "type": ty, "url": format!("/services/data/{version}/sobjects/{ty}/{id}") })
}

fn insert_path(db: &dyn Db, out: &mut Map<String, Value>, rec: &Record, steps: &[Step], version: &str) {
    match steps.first() {
        None => {}
        Some(Step::Field(f)) => {
            out.insert(f.clone(), rec.value(f));
        }
        Some(Step::Rel { field, rel, target }) => {
            let linked =
                rec.get(field).and_then(FieldRef::as_str).and_then(|id| db.lookup(id).map(|(d, r)| (id, d, r)));
            let Some((id, def, target_rec)) = linked else {
                out.insert(rel.clone(), Value::Null);
                return;
            };
            let nested = out.entry(rel.clone()).or_insert_with(|| {
                let mut m = Map::new();
                let ty = if target.is_some() { def.name } else { "Name" };
                m.insert(
                    "attributes".into(),
                    json!({"type": ty, "url": format!("/services/data/{version}/sobjects/{}/{id}", def.name)}),
                );
                Value::Object(m)
            });
            if let Value::Object(m) = nested {
                match (target, steps.get(1)) {
                    (None, Some(Step::Field(leaf))) => {
                        m.insert(leaf.clone(), name_value(def, target_rec, leaf));
                    }
                    _ => insert_path(db, m, target_rec, &steps[1..], version),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::schema::standard_objects;
    use std::collections::BTreeMap;

    struct TestDb {
        objects: BTreeMap<String, SObjectDef>,
        rows: BTreeMap<String, (String, Record)>,
    }

    impl Db for TestDb {
        fn object(&self, name: &str) -> Option<&SObjectDef> {
            self.objects.values().find(|o| o.name.eq_ignore_ascii_case(name))
        }
        fn lookup(&self, id: &str) -> Option<(&SObjectDef, &Record)> {
            let (ty, rec) = self.rows.get(id)?;
            Some((self.objects.get(ty)?, rec))
        }
        fn children<'a>(&'a self, child: &str, field: &str, parent: &str) -> Vec<(&'a str, &'a Record)> {
            self.rows
                .iter()
                .filter(|(_, (ty, r))| ty == child && r.get_str(field) == Some(parent))
                .map(|(id, (_, r))| (id.as_str(), r))
                .collect()
        }
    }

    fn rec(v: Value) -> Record {
        v.as_object().unwrap().iter().map(|(k, v)| (k, v.clone())).collect()
    }

    fn db() -> TestDb {
        let mut rows = BTreeMap::new();
        rows.insert(
            "005A".to_string(),
            (
                "User".to_string(),
                rec(
                    json!({"Id": "005A", "FirstName": "Ann", "LastName": "Lee", "ManagerId": "005B", "IsActive": true}),
                ),
            ),
        );
        rows.insert(
            "005B".to_string(),
            (
                "User".to_string(),
                rec(json!({"Id": "005B", "FirstName": "Bo", "LastName": "Vp", "ManagerId": null, "IsActive": true})),
            ),
        );
        rows.insert(
            "00GQ".to_string(),
            ("Group".to_string(), rec(json!({"Id": "00GQ", "Name": "Inbound Queue", "Type": "Queue"}))),
        );
        TestDb { objects: standard_objects(), rows }
    }

    fn lead(id: &str, owner: &str, ms: &str, score: f64, status: &str) -> Record {
        rec(
            json!({"Id": id, "OwnerId": owner, "SystemModstamp": ms, "Lead_Score__c": score, "Status": status, "IsConverted": false, "Email": null}),
        )
    }

    fn run(q: &str, rows: &[Record]) -> Result<Vec<String>, ApiError> {
        let db = db();
        let now = parse_datetime("2026-03-04T12:00:00Z").unwrap();
        let b = bind(&db, parse(q)?, now)?;
        let mut hits: Vec<(String, &Record)> =
            rows.iter().filter(|r| b.matches(&db, r)).map(|r| (r.get_str("Id").unwrap().to_string(), r)).collect();
        b.sort(&db, &mut hits);
        Ok(hits.into_iter().map(|(id, _)| id).collect())
    }

    fn sample() -> Vec<Record> {
        vec![
            lead("00Q1", "005A", "2026-03-02T09:00:00.000+0000", 80.0, "Open - Not Contacted"),
            lead("00Q2", "00GQ", "2026-03-02T09:00:00.000+0000", 40.0, "Working - Contacted"),
            lead("00Q3", "005A", "2026-03-01T09:00:00.000+0000", 95.0, "Qualified"),
        ]
    }

    #[test]
    fn datetime_literals_order_by_modstamp_and_id() {
        let ids = run(
            "SELECT Id, Owner.Type FROM Lead WHERE SystemModstamp >= 2026-03-02T09:00:00Z ORDER BY SystemModstamp, Id LIMIT 10",
            &sample(),
        )
        .unwrap();
        assert_eq!(ids, vec!["00Q1", "00Q2"]);
        let ids =
            run("SELECT Id FROM Lead WHERE SystemModstamp > 2026-03-02T10:00:00+01:00 ORDER BY Id DESC", &sample())
                .unwrap();
        assert!(ids.is_empty(), "{ids:?}");
        let ids = run("SELECT Id FROM Lead WHERE SystemModstamp < 2026-03-02T09:00:00.000Z", &sample()).unwrap();
        assert_eq!(ids, vec!["00Q3"]);
    }

    #[test]
    fn numbers_strings_booleans_in_and_or() {
        let ids = run("SELECT Id FROM Lead WHERE Lead_Score__c > 50 AND (Status = 'open - not contacted' OR Status IN ('Qualified')) ORDER BY Lead_Score__c DESC", &sample()).unwrap();
        assert_eq!(ids, vec!["00Q3", "00Q1"]);
        let ids = run(
            "SELECT Id FROM Lead WHERE IsConverted = false AND Status NOT IN ('Qualified') AND Email = null",
            &sample(),
        )
        .unwrap();
        assert_eq!(ids.len(), 2);
        let ids = run("SELECT Id FROM Lead WHERE Owner.Type = 'Queue'", &sample()).unwrap();
        assert_eq!(ids, vec!["00Q2"]);
        let ids = run("SELECT Id FROM Lead WHERE Status LIKE 'work%'", &sample()).unwrap();
        assert_eq!(ids, vec!["00Q2"]);
    }

    #[test]
    fn relationship_fields_render_nested_with_name_pseudo_object() {
        let db = db();
        let now = parse_datetime("2026-03-04T12:00:00Z").unwrap();
        let b = bind(&db, parse("SELECT Id, Owner.Type, Owner.Name FROM Lead").unwrap(), now).unwrap();
        let rows = sample();
        let out = b.render(&db, "00Q1", &rows[0], "v62.0");
        assert_eq!(out["attributes"], json!({"type": "Lead", "url": "/services/data/v62.0/sobjects/Lead/00Q1"}));
        assert_eq!(out["Owner"]["Type"], json!("User"));
        assert_eq!(out["Owner"]["Name"], json!("Ann Lee"));
        assert_eq!(out["Owner"]["attributes"]["type"], json!("Name"));
        assert_eq!(out.as_object().unwrap().len(), 3, "{out}");
        // Non-polymorphic chains reach the target's own fields.
        let b = bind(&db, parse("SELECT Id, Manager.ManagerId FROM User").unwrap(), now).unwrap();
        let (_, user) = db.lookup("005A").unwrap();
        let out = b.render(&db, "005A", user, "v62.0");
        assert_eq!(out["Manager"]["ManagerId"], Value::Null);
        assert_eq!(out["Manager"]["attributes"]["type"], json!("User"));
    }

    #[test]
    fn errors_match_salesforce_codes() {
        let e = run("SELECT Id FRM Lead", &[]).unwrap_err();
        assert_eq!(e.error_code, "MALFORMED_QUERY");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("ERROR at Row:1:Column:11"), "{}", e.message);
        assert!(e.message.contains("unexpected token: 'FRM'"), "{}", e.message);
        assert_eq!(run("SELECT Id FROM Leed", &[]).unwrap_err().error_code, "INVALID_TYPE");
        assert_eq!(run("SELECT Nope__c FROM Lead", &[]).unwrap_err().error_code, "INVALID_FIELD");
        // Owner is polymorphic: ManagerId is not a field of Name.
        let e = run("SELECT Owner.ManagerId FROM Lead", &[]).unwrap_err();
        assert_eq!(e.error_code, "INVALID_FIELD");
        assert!(e.message.contains("entity 'Name'"));
        let e = run("SELECT Id FROM Lead WHERE SystemModstamp > '2026-03-02T09:00:00Z'", &[]).unwrap_err();
        assert_eq!(e.error_code, "INVALID_QUERY_FILTER_OPERATOR");
        assert_eq!(run("SELECT Id FROM Lead OFFSET 2001", &[]).unwrap_err().error_code, "NUMBER_OUTSIDE_VALID_RANGE");
        assert_eq!(
            run("SELECT Id FROM Lead WHERE SystemModstamp > 2026-03-02T09:00:00", &[]).unwrap_err().error_code,
            "MALFORMED_QUERY"
        );
    }

    #[test]
    fn modstamp_range_is_extracted_from_top_level_and() {
        let db = db();
        let now = parse_datetime("2026-03-04T12:00:00Z").unwrap();
        let q = "SELECT Id FROM Lead WHERE SystemModstamp >= 2026-03-02T09:00:00Z AND SystemModstamp < 2026-03-03T00:00:00Z AND IsDeleted = false ORDER BY SystemModstamp, Id";
        let b = bind(&db, parse(q).unwrap(), now).unwrap();
        let lo = to_millis(parse_datetime("2026-03-02T09:00:00Z").unwrap());
        let hi = to_millis(parse_datetime("2026-03-03T00:00:00Z").unwrap());
        assert_eq!(b.modstamp_range(), (Some(lo), Some(hi)));
        assert!(b.ordered_by_modstamp());
        let b = bind(
            &db,
            parse("SELECT Id FROM Lead WHERE SystemModstamp >= 2026-03-02T09:00:00Z OR IsDeleted = true").unwrap(),
            now,
        )
        .unwrap();
        assert_eq!(b.modstamp_range(), (None, None));
    }

    fn history(id: &str, lead: &str, field: &str, at: &str, deleted: bool) -> (String, (String, Record)) {
        let r = rec(
            json!({"Id": id, "LeadId": lead, "Field": field, "DataType": "Text", "OldValue": null, "NewValue": "x",
            "CreatedDate": at, "IsDeleted": deleted}),
        );
        (id.to_string(), ("LeadHistory".to_string(), r))
    }

    #[test]
    fn child_subqueries_bind_to_the_relationship_and_select_its_rows() {
        let mut db = db();
        db.rows.extend([
            history("0173", "00Q1", "Status", "2026-03-02T09:00:00.000+0000", false),
            history("0171", "00Q1", "Owner", "2026-03-02T10:00:00.000+0000", false),
            history("0172", "00Q1", "created", "2026-03-02T08:00:00.000+0000", false),
            history("0174", "00Q1", "Status", "2026-03-02T11:00:00.000+0000", true),
            history("0175", "00Q2", "Status", "2026-03-02T11:00:00.000+0000", false),
        ]);
        let now = parse_datetime("2026-03-04T12:00:00Z").unwrap();
        let q = "SELECT Id, (SELECT Field, CreatedDate FROM histories WHERE Field IN ('Owner','Status') ORDER BY CreatedDate) FROM Lead";
        let b = bind(&db, parse(q).unwrap(), now).unwrap();
        assert_eq!(b.children.len(), 1);
        assert_eq!((b.children[0].name.as_str(), b.children[0].field.as_str()), ("Histories", "LeadId"));
        assert_eq!(b.children[0].bound.object, "LeadHistory");
        assert_eq!(b.child_ids(&db, 0, "00Q1"), vec!["0173", "0171"], "filtered, ordered, deleted rows hidden");
        let all = b.clone().with_deleted(true);
        assert_eq!(all.child_ids(&db, 0, "00Q1"), vec!["0173", "0171", "0174"], "queryAll sees the recycle bin");
        assert!(b.child_ids(&db, 0, "00Q3").is_empty());
        // The parent row renders without the subquery; the caller pages it.
        let (_, parent) = (String::new(), lead("00Q1", "005A", "2026-03-02T09:00:00.000+0000", 1.0, "Qualified"));
        let out = b.render(&db, "00Q1", &parent, "v62.0");
        assert!(out.get("Histories").is_none());
        let limited = bind(
            &db,
            parse("SELECT Id, (SELECT Id FROM Histories ORDER BY CreatedDate DESC LIMIT 1) FROM Lead").unwrap(),
            now,
        )
        .unwrap();
        assert_eq!(limited.child_ids(&db, 0, "00Q1"), vec!["0171"]);
    }

    #[test]
    fn child_subquery_errors_match_salesforce() {
        let e = run("SELECT Id, (SELECT Id FROM Historys) FROM Lead", &[]).unwrap_err();
        assert_eq!((e.status, e.error_code), (StatusCode::BAD_REQUEST, "INVALID_TYPE"));
        assert!(
            e.message.starts_with("Didn't understand relationship 'Historys' in FROM part of query call."),
            "{}",
            e.message
        );
        // Relationships belong to the parent: User has no Histories here.
        assert_eq!(run("SELECT Id, (SELECT Id FROM Histories) FROM User", &[]).unwrap_err().error_code, "INVALID_TYPE");
        let e = run("SELECT Id, (SELECT Nope FROM Histories) FROM Lead", &[]).unwrap_err();
        assert_eq!(e.error_code, "INVALID_FIELD");
        assert!(e.message.contains("entity 'LeadHistory'"), "{}", e.message);
        for bad in [
            "SELECT Id, (SELECT Id, (SELECT Id FROM Tasks) FROM Histories) FROM Lead",
            "SELECT Id, (SELECT Id FROM Histories OFFSET 5) FROM Lead",
            "SELECT Id, (SELECT COUNT() FROM Histories) FROM Lead",
            "SELECT Id, (SELECT Id FROM Histories FROM Lead",
            "SELECT Id, (SELECT Id FROM Histories)) FROM Lead",
        ] {
            assert_eq!(run(bad, &[]).unwrap_err().error_code, "MALFORMED_QUERY", "{bad}");
        }
    }

    #[test]
    fn relative_date_literals() {
        let rows = vec![
            lead("00Q1", "005A", "2026-03-04T01:00:00.000+0000", 1.0, "Qualified"),
            lead("00Q2", "005A", "2026-03-03T23:00:00.000+0000", 1.0, "Qualified"),
            lead("00Q3", "005A", "2026-02-20T23:00:00.000+0000", 1.0, "Qualified"),
        ];
        assert_eq!(run("SELECT Id FROM Lead WHERE SystemModstamp = TODAY", &rows).unwrap(), vec!["00Q1"]);
        assert_eq!(
            run("SELECT Id FROM Lead WHERE SystemModstamp = LAST_N_DAYS:7 ORDER BY Id", &rows).unwrap(),
            vec!["00Q1", "00Q2"]
        );
    }
}
