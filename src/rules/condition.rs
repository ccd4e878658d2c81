//! A rule's condition split into its boolean structure and its atomic predicates.
//!
//! `level > 5 AND (amount > 100 OR in_audience('vip')) AND NOT first_order` becomes
//! `And[atom, Or[atom, audience], Not[atom]]`. The atoms are what the network shares
//! between rules: each distinct one is evaluated once per batch of events.
//!
//! Invariant: combining the atoms' values with SQL's three-valued AND, OR and NOT gives
//! exactly what the whole expression gives in a `WHERE` clause, because those are the
//! operators SQL itself combines them with; a rule matches where the result is TRUE.

use datafusion::sql::sqlparser::ast::{self, BinaryOperator, UnaryOperator};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

/// The name of the audience predicate: `in_audience('name')` is true when the event's
/// user is a member of the saved audience `name`.
pub const IN_AUDIENCE: &str = "in_audience";

/// The boolean structure of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Atom(Atom),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

/// An atomic predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Atom {
    /// A SQL boolean expression with no AND, OR or NOT at its top.
    Sql(Box<ast::Expr>),
    /// `in_audience('name')`.
    Audience(String),
}

impl Condition {
    /// Parses a SQL boolean expression (PostgreSQL syntax).
    pub fn parse(text: &str) -> Result<Condition, String> {
        let dialect = PostgreSqlDialect {};
        let mut parser = Parser::new(&dialect)
            .try_with_sql(text)
            .map_err(|e| e.to_string())?;
        let expr = parser.parse_expr().map_err(|e| e.to_string())?;
        let rest = parser.peek_token();
        if rest.token != Token::EOF {
            return Err(format!(
                "unexpected '{}' after the end of the expression",
                rest.token
            ));
        }
        Self::from_ast(expr)
    }

    fn from_ast(expr: ast::Expr) -> Result<Condition, String> {
        match expr {
            ast::Expr::Nested(inner) => Self::from_ast(*inner),
            ast::Expr::BinaryOp {
                left,
                op: op @ (BinaryOperator::And | BinaryOperator::Or),
                right,
            } => {
                let and = op == BinaryOperator::And;
                let mut parts = Vec::new();
                for side in [*left, *right] {
                    match Self::from_ast(side)? {
                        Condition::And(inner) if and => parts.extend(inner),
                        Condition::Or(inner) if !and => parts.extend(inner),
                        other => parts.push(other),
                    }
                }
                Ok(if and {
                    Condition::And(parts)
                } else {
                    Condition::Or(parts)
                })
            }
            ast::Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Ok(Condition::Not(Box::new(Self::from_ast(*expr)?))),
            ast::Expr::Function(f) if is_in_audience(&f.name) => audience_atom(&f),
            other => {
                if other.to_string().to_lowercase().contains(IN_AUDIENCE) {
                    return Err(format!(
                        "{IN_AUDIENCE}('name') must stand on its own in the condition, \
                         combined only with AND, OR and NOT: {other}"
                    ));
                }
                Ok(Condition::Atom(Atom::Sql(Box::new(other))))
            }
        }
    }

    /// Every atom, in order of appearance.
    pub fn atoms(&self) -> Vec<&Atom> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Atom>) {
        match self {
            Condition::Atom(atom) => out.push(atom),
            Condition::And(parts) | Condition::Or(parts) => {
                parts.iter().for_each(|p| p.collect(out))
            }
            Condition::Not(inner) => inner.collect(out),
        }
    }
}

fn is_in_audience(name: &ast::ObjectName) -> bool {
    name.to_string().eq_ignore_ascii_case(IN_AUDIENCE)
}

fn audience_atom(f: &ast::Function) -> Result<Condition, String> {
    let usage = || format!("{IN_AUDIENCE} takes one argument, the audience's name as a text: {f}");
    let ast::FunctionArguments::List(list) = &f.args else {
        return Err(usage());
    };
    let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Value(value)))] =
        list.args.as_slice()
    else {
        return Err(usage());
    };
    match &value.value {
        ast::Value::SingleQuotedString(name)
        | ast::Value::DollarQuotedString(ast::DollarQuotedString { value: name, .. }) => {
            Ok(Condition::Atom(Atom::Audience(name.clone())))
        }
        _ => Err(usage()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(atom: &Atom) -> String {
        match atom {
            Atom::Sql(e) => e.to_string(),
            Atom::Audience(name) => format!("audience {name}"),
        }
    }

    #[test]
    fn splits_the_boolean_structure_and_flattens_it() {
        let c = Condition::parse(
            "level > 5 AND (amount > 100 OR In_Audience('vip')) AND NOT (city = 'x' AND age < 30)",
        )
        .unwrap();
        let Condition::And(parts) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(parts.len(), 3);
        assert!(matches!(&parts[1], Condition::Or(o) if o.len() == 2));
        assert!(matches!(&parts[2], Condition::Not(_)));
        let atoms: Vec<String> = c.atoms().into_iter().map(sql).collect();
        assert_eq!(
            atoms,
            [
                "level > 5",
                "amount > 100",
                "audience vip",
                "city = 'x'",
                "age < 30"
            ]
        );
    }

    #[test]
    fn rejects_bad_syntax_and_misused_audiences() {
        assert!(Condition::parse("amount >").is_err());
        let err = Condition::parse("amount > 1 1").unwrap_err();
        assert!(err.contains("unexpected"), "{err}");
        let err = Condition::parse("in_audience(user_id)").unwrap_err();
        assert!(err.contains("one argument"), "{err}");
        let err = Condition::parse("coalesce(in_audience('a'), false)").unwrap_err();
        assert!(err.contains("on its own"), "{err}");
    }
}
