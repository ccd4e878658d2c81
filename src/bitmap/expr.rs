//! Tag expressions: set algebra over named bitmaps, as in Doris's
//! `orthogonal_bitmap_expr_calculate`.
//!
//! Grammar: tags combined with `&` (and), `|` (or), `^` (xor) and `-` (and not), with
//! parentheses. `&` binds tighter than the other three, which bind equally and from left
//! to right: `a | b & c - d` is `(a | (b & c)) - d`. A tag is a run of characters other
//! than operators, parentheses and white space, or any text in single or double quotes
//! (doubling the quote inside). A tag with no bitmap is the empty set. An expression has
//! at most [`MAX_OPERATORS`] operators and [`MAX_NESTING`] levels of parentheses: parsing
//! and evaluating recurse that deep, and the thread's stack is not to run out.
//!
//! ```
//! use martdb::bitmap::{Bitmap, expr::TagExpr};
//!
//! let expr = TagExpr::parse("(active & shoes) - couponed").unwrap();
//! let tags = [("active", vec![1, 2, 3, 4]), ("shoes", vec![2, 3, 4]), ("couponed", vec![3])];
//! let lookup = |tag: &str| {
//!     tags.iter().find(|(t, _)| *t == tag).map(|(_, v)| Bitmap::from_values(v.iter().copied()))
//! };
//! let bitmaps: Vec<_> = expr.tags().iter().map(|t| lookup(t)).collect();
//! assert_eq!(expr.cardinality(&|i| bitmaps[i].as_ref()), 2);
//! ```

use super::{Bitmap, BitmapError, SetOp};

/// The most operators an expression may have (evaluation recurses once per operator).
pub const MAX_OPERATORS: usize = 1000;
/// The most levels of parentheses an expression may have.
pub const MAX_NESTING: usize = 100;

/// A parsed tag expression. Tags are numbered by first appearance; evaluation asks for
/// each tag's bitmap by that number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagExpr {
    tags: Vec<String>,
    root: Node,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Tag(usize),
    Op(SetOp, Box<Node>, Box<Node>),
}

impl TagExpr {
    pub fn parse(text: &str) -> Result<TagExpr, BitmapError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            text,
            tokens,
            at: 0,
            tags: Vec::new(),
        };
        let root = parser.union()?;
        if parser.at < parser.tokens.len() {
            return Err(parser.error("unexpected ')'"));
        }
        Ok(TagExpr {
            tags: parser.tags,
            root,
        })
    }

    /// The distinct tags, in order of first appearance.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The set the expression denotes; `bitmap(i)` gives tag `i`'s bitmap, `None` for
    /// the empty set.
    pub fn evaluate<'a>(&self, bitmap: &dyn Fn(usize) -> Option<&'a Bitmap>) -> Bitmap {
        eval(&self.root, bitmap)
    }

    /// The size of [`TagExpr::evaluate`]'s set, without building the outermost result.
    pub fn cardinality<'a>(&self, bitmap: &dyn Fn(usize) -> Option<&'a Bitmap>) -> u64 {
        match &self.root {
            Node::Tag(i) => bitmap(*i).map_or(0, Bitmap::cardinality),
            Node::Op(op, left, right) => {
                let empty = Bitmap::new();
                let left = owned_or_ref(left, bitmap);
                let right = owned_or_ref(right, bitmap);
                left.as_ref()
                    .unwrap_or(&empty)
                    .combine_cardinality(right.as_ref().unwrap_or(&empty), *op)
            }
        }
    }
}

/// A node's set, borrowing a tag's bitmap rather than copying it.
enum Evaluated<'a> {
    Borrowed(Option<&'a Bitmap>),
    Owned(Bitmap),
}

impl Evaluated<'_> {
    fn as_ref(&self) -> Option<&Bitmap> {
        match self {
            Evaluated::Borrowed(b) => *b,
            Evaluated::Owned(b) => Some(b),
        }
    }
}

fn owned_or_ref<'a>(node: &Node, bitmap: &dyn Fn(usize) -> Option<&'a Bitmap>) -> Evaluated<'a> {
    match node {
        Node::Tag(i) => Evaluated::Borrowed(bitmap(*i)),
        _ => Evaluated::Owned(eval(node, bitmap)),
    }
}

fn eval<'a>(node: &Node, bitmap: &dyn Fn(usize) -> Option<&'a Bitmap>) -> Bitmap {
    match node {
        Node::Tag(i) => bitmap(*i).cloned().unwrap_or_default(),
        Node::Op(op, left, right) => {
            let right = owned_or_ref(right, bitmap);
            let right = right.as_ref();
            let mut left = eval(left, bitmap);
            match right {
                Some(right) => left.combine_in_place(right, *op),
                None if *op == SetOp::And => left = Bitmap::new(),
                None => {}
            }
            left
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Tag(String),
    Op(SetOp),
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<Token>, BitmapError> {
    let bad = |message: String| BitmapError::BadExpression {
        expression: text.to_string(),
        message,
    };
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    let (mut operators, mut depth) = (0usize, 0usize);
    while let Some((at, c)) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            '&' | '|' | '^' | '-' => {
                operators += 1;
                if operators > MAX_OPERATORS {
                    return Err(bad(format!(
                        "more than {MAX_OPERATORS} operators; combine the tags in steps"
                    )));
                }
                Token::Op(match c {
                    '&' => SetOp::And,
                    '|' => SetOp::Or,
                    '^' => SetOp::Xor,
                    _ => SetOp::AndNot,
                })
            }
            '(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(bad(format!(
                        "more than {MAX_NESTING} levels of parentheses at offset {at}"
                    )));
                }
                Token::Open
            }
            ')' => {
                depth = depth.saturating_sub(1);
                Token::Close
            }
            '\'' | '"' => {
                let mut tag = String::new();
                loop {
                    match chars.next() {
                        Some((_, q)) if q == c => {
                            if chars.peek().is_some_and(|(_, n)| *n == c) {
                                chars.next();
                                tag.push(c);
                            } else {
                                break;
                            }
                        }
                        Some((_, other)) => tag.push(other),
                        None => return Err(bad(format!("unterminated quote at offset {at}"))),
                    }
                }
                Token::Tag(tag)
            }
            c => {
                let mut tag = c.to_string();
                while let Some((_, n)) = chars.peek() {
                    if n.is_whitespace() || "&|^-()'\"".contains(*n) {
                        break;
                    }
                    tag.push(*n);
                    chars.next();
                }
                Token::Tag(tag)
            }
        };
        tokens.push(token);
    }
    Ok(tokens)
}

struct Parser<'t> {
    text: &'t str,
    tokens: Vec<Token>,
    at: usize,
    tags: Vec<String>,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> BitmapError {
        BitmapError::BadExpression {
            expression: self.text.to_string(),
            message: message.to_string(),
        }
    }

    /// `union := intersection (('|' | '^' | '-') intersection)*`
    fn union(&mut self) -> Result<Node, BitmapError> {
        let mut left = self.intersection()?;
        while let Some(Token::Op(op @ (SetOp::Or | SetOp::Xor | SetOp::AndNot))) =
            self.tokens.get(self.at)
        {
            let op = *op;
            self.at += 1;
            let right = self.intersection()?;
            left = Node::Op(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `intersection := operand ('&' operand)*`
    fn intersection(&mut self) -> Result<Node, BitmapError> {
        let mut left = self.operand()?;
        while let Some(Token::Op(SetOp::And)) = self.tokens.get(self.at) {
            self.at += 1;
            let right = self.operand()?;
            left = Node::Op(SetOp::And, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `operand := tag | '(' union ')'`
    fn operand(&mut self) -> Result<Node, BitmapError> {
        match self.tokens.get(self.at).cloned() {
            Some(Token::Tag(tag)) => {
                self.at += 1;
                let index = match self.tags.iter().position(|t| *t == tag) {
                    Some(i) => i,
                    None => {
                        self.tags.push(tag);
                        self.tags.len() - 1
                    }
                };
                Ok(Node::Tag(index))
            }
            Some(Token::Open) => {
                self.at += 1;
                let inner = self.union()?;
                if self.tokens.get(self.at) != Some(&Token::Close) {
                    return Err(self.error("missing ')'"));
                }
                self.at += 1;
                Ok(inner)
            }
            Some(Token::Op(_)) => Err(self.error("an operator where a tag was expected")),
            Some(Token::Close) => Err(self.error("')' where a tag was expected")),
            None if self.tokens.is_empty() => Err(self.error("no tags")),
            None => Err(self.error("ends where a tag was expected")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, sets: &[(&str, &[u64])]) -> Vec<u64> {
        let expr = TagExpr::parse(text).unwrap();
        let bitmaps: Vec<Option<Bitmap>> = expr
            .tags()
            .iter()
            .map(|t| {
                sets.iter()
                    .find(|(name, _)| name == t)
                    .map(|(_, v)| Bitmap::from_values(v.iter().copied()))
            })
            .collect();
        let lookup = |i: usize| bitmaps[i].as_ref();
        let set = expr.evaluate(&lookup);
        assert_eq!(expr.cardinality(&lookup), set.cardinality(), "{text}");
        set.to_vec()
    }

    const SETS: &[(&str, &[u64])] = &[
        ("a", &[1, 2, 3, 4]),
        ("b", &[3, 4, 5]),
        ("c", &[4, 6]),
        ("two words", &[9]),
    ];

    #[test]
    fn operators_and_precedence() {
        assert_eq!(run("a & b", SETS), vec![3, 4]);
        assert_eq!(run("a | b", SETS), vec![1, 2, 3, 4, 5]);
        assert_eq!(run("a ^ b", SETS), vec![1, 2, 5]);
        assert_eq!(run("a - b", SETS), vec![1, 2]);
        // & first, then the rest from left to right.
        assert_eq!(run("c | a & b", SETS), vec![3, 4, 6]);
        assert_eq!(run("a - b - c", SETS), vec![1, 2]);
        assert_eq!(run("a - (b - c)", SETS), vec![1, 2, 4]);
        assert_eq!(run("(a&b)-c", SETS), vec![3]);
        assert_eq!(run("'two words' | \"c\"", SETS), vec![4, 6, 9]);
        assert_eq!(run("a", SETS), vec![1, 2, 3, 4]);
    }

    #[test]
    fn unknown_tags_are_empty() {
        assert_eq!(run("a & missing", SETS), Vec::<u64>::new());
        assert_eq!(run("a - missing", SETS), vec![1, 2, 3, 4]);
        assert_eq!(run("missing | b", SETS), vec![3, 4, 5]);
    }

    #[test]
    fn tags_are_listed_once() {
        let expr = TagExpr::parse("(x & y) | (x - 'it''s')").unwrap();
        assert_eq!(expr.tags(), ["x", "y", "it's"]);
    }

    #[test]
    fn malformed_expressions_say_why() {
        for (text, why) in [
            ("", "no tags"),
            ("a &", "ends where a tag was expected"),
            ("(a & b", "missing ')'"),
            ("a & b)", "unexpected ')'"),
            ("& a", "an operator where a tag was expected"),
            ("'open", "unterminated quote"),
        ] {
            let err = TagExpr::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
