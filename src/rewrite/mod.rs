//! Rewrites of parsed PostgreSQL that DataFusion does not plan as written, into SQL that
//! means the same.
//!
//! - `x LIKE p ESCAPE '/'` (SQLAlchemy's schema reflection sends `$1 || '%' ESCAPE '/'`):
//!   DataFusion takes only the backslash as the escape character, so a literal pattern is
//!   rewritten to the backslash form (`'pg/_%'` to `'pg\_%'`) and any other pattern `p`
//!   to `like_escape(p, '/')`, which does the same when the query runs.
//! - Correlated scalar subqueries that are not aggregates, in the logical plan
//!   ([`scalar_subquery`]).
//! - Before these, the compatibility rules of `datafusion-pg-catalog` ([`compat`]).
//!
//! Invariant: a rewrite never changes what a statement means.

pub(crate) mod compat;
pub(crate) mod scalar_subquery;

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName, Statement, Value, visit_expressions_mut,
};

use crate::udf::system::like_escape::to_backslash_escapes;

/// Applies every rewrite to `statement`.
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        like_escape(expr);
        ControlFlow::<()>::Continue(())
    });
}

fn like_escape(expr: &mut Expr) {
    let (Expr::Like {
        pattern,
        escape_char,
        ..
    }
    | Expr::ILike {
        pattern,
        escape_char,
        ..
    }) = expr
    else {
        return;
    };
    let Some(escape) = escape_char.as_ref().and_then(|e| single_char(&e.value)) else {
        return;
    };
    if escape == '\\' {
        return;
    }
    let literal = match pattern.as_ref() {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(text) => Some(text.clone()),
            _ => None,
        },
        _ => None,
    };
    match literal {
        Some(text) => {
            // A lone escape character at the end: left for like_escape's error.
            let Some(rewritten) = to_backslash_escapes(&text, escape) else {
                **pattern = like_escape_call((**pattern).clone(), escape);
                *escape_char = None;
                return;
            };
            **pattern = Expr::value(Value::SingleQuotedString(rewritten));
        }
        None => **pattern = like_escape_call((**pattern).clone(), escape),
    }
    *escape_char = None;
}

/// `like_escape(pattern, 'escape')`.
fn like_escape_call(pattern: Expr, escape: char) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new("like_escape")]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![
                FunctionArg::Unnamed(FunctionArgExpr::Expr(pattern)),
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::value(
                    Value::SingleQuotedString(escape.to_string()),
                ))),
            ],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn single_char(value: &Value) -> Option<char> {
    let Value::SingleQuotedString(s) = value else {
        return None;
    };
    let mut chars = s.chars();
    let c = chars.next()?;
    chars.next().is_none().then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut statement);
        statement.to_string()
    }

    #[test]
    fn other_escape_characters_become_backslashes() {
        assert_eq!(
            rewritten("SELECT n FROM t WHERE n NOT LIKE 'pg/_%' ESCAPE '/'"),
            r"SELECT n FROM t WHERE n NOT LIKE 'pg\_%'"
        );
        assert_eq!(
            rewritten(r"SELECT n ILIKE 'a#%b\c##' ESCAPE '#'"),
            r"SELECT n ILIKE 'a\%b\\c#'"
        );
        assert_eq!(
            rewritten("SELECT n LIKE 'x/y' ESCAPE '/'"),
            "SELECT n LIKE 'xy'"
        );
    }

    #[test]
    fn other_patterns_are_converted_when_the_query_runs() {
        for sql in [r"SELECT n LIKE 'a\_b' ESCAPE '\'", "SELECT n LIKE 'a_b'"] {
            assert_eq!(rewritten(sql), sql);
        }
        assert_eq!(
            rewritten("SELECT n NOT LIKE $1 || '%' ESCAPE '/'"),
            "SELECT n NOT LIKE like_escape($1 || '%', '/')"
        );
        assert_eq!(
            rewritten("SELECT n LIKE 'ab/' ESCAPE '/'"),
            "SELECT n LIKE like_escape('ab/', '/')"
        );
    }
}
