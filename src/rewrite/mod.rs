//! Rewrites of parsed PostgreSQL that DataFusion does not plan as written, into SQL that
//! means the same.
//!
//! - `x LIKE p ESCAPE '/'` (SQLAlchemy's schema reflection sends `$1 || '%' ESCAPE '/'`):
//!   DataFusion takes only the backslash as the escape character, so a literal pattern is
//!   rewritten to the backslash form (`'pg/_%'` to `'pg\_%'`) and any other pattern `p`
//!   to `like_escape(p, '/')`, which does the same when the query runs.
//! - `generate_subscripts` and `_pg_expandarray`, set-returning functions of catalog
//!   queries, as `unnest` of arrays ([`set_returning`]).
//! - `(composite).field` as `get_field(composite, 'field')` ([`composite_field`]).
//! - Correlated scalar subqueries that are not aggregates, in the logical plan
//!   ([`scalar_subquery`]).
//! - Named arguments of table functions (`forecast('...', horizon => 28, level => [80,
//!   95])`), which DataFusion does not plan, as one trailing options text
//!   (`'horizon = 28, level = 80 95'`) that the functions read ([`named_table_arguments`]).
//! - Before these, the compatibility rules of `datafusion-pg-catalog` ([`compat`]).
//!
//! Invariant: a rewrite never changes what a statement means.

pub(crate) mod compat;
pub(crate) mod scalar_subquery;

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName, Statement, TableFactor, UnaryOperator, Value, VisitMut,
    VisitorMut, visit_expressions_mut,
};

use crate::udf::system::like_escape::to_backslash_escapes;

/// Applies every rewrite to `statement`.
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        like_escape(expr);
        set_returning(expr);
        composite_field(expr);
        ControlFlow::<()>::Continue(())
    });
    let _ = statement.visit(&mut NamedTableArguments);
}

/// Turns the named arguments of a table function into one options text after its
/// positional arguments: `f('q', horizon => 28, model => 'ets', level => [80, 95])` is
/// planned as `f('q', 'horizon = 28, model = ets, level = 80 95')`. Values are written
/// as their text (a quoted text without quotes, an array as its elements separated by
/// spaces), so a value may not contain a comma.
struct NamedTableArguments;

impl VisitorMut for NamedTableArguments {
    type Break = ();

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        named_table_arguments(factor);
        ControlFlow::Continue(())
    }
}

fn named_table_arguments(factor: &mut TableFactor) {
    let TableFactor::Table {
        args: Some(args), ..
    } = factor
    else {
        return;
    };
    if !args
        .args
        .iter()
        .any(|a| matches!(a, FunctionArg::Named { .. } | FunctionArg::ExprNamed { .. }))
    {
        return;
    }
    let mut options = Vec::new();
    let mut positional = Vec::new();
    for arg in args.args.drain(..) {
        match arg {
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(value),
                ..
            } => options.push(format!("{} = {}", name.value, option_text(&value))),
            // The PostgreSQL dialect parses `name => value` with the name as an expression.
            FunctionArg::ExprNamed {
                name: Expr::Identifier(name),
                arg: FunctionArgExpr::Expr(value),
                ..
            } => options.push(format!("{} = {}", name.value, option_text(&value))),
            other => positional.push(other),
        }
    }
    positional.push(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::value(
        Value::SingleQuotedString(options.join(", ")),
    ))));
    args.args = positional;
}

/// An option value as the options text writes it.
fn option_text(value: &Expr) -> String {
    match value {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(ident) => ident.value.clone(),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => format!("-{}", option_text(expr)),
        Expr::Array(array) => array
            .elem
            .iter()
            .map(option_text)
            .collect::<Vec<_>>()
            .join(" "),
        Expr::Nested(inner) => option_text(inner),
        other => other.to_string(),
    }
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
    call(
        "like_escape",
        vec![
            pattern,
            Expr::value(Value::SingleQuotedString(escape.to_string())),
        ],
    )
}

/// Set-returning functions of PostgreSQL's catalog queries, as `unnest` of an array:
/// - `generate_subscripts(a, d)` (SQLAlchemy's primary-key reflection) becomes
///   `unnest(generate_series(1, array_length(a, d)))`;
/// - `information_schema._pg_expandarray(a)` (pgjdbc's `getPrimaryKeys`) becomes
///   `unnest(_pg_expandarray(a))`.
///
/// Several `unnest` in one select list are zipped, as PostgreSQL zips set-returning
/// functions there, so each subscript meets its element.
fn set_returning(expr: &mut Expr) {
    let Expr::Function(function) = expr else {
        return;
    };
    let Some(name) = function
        .name
        .0
        .last()
        .and_then(|part| part.as_ident())
        .map(|ident| ident.value.to_ascii_lowercase())
    else {
        return;
    };
    let FunctionArguments::List(list) = &function.args else {
        return;
    };
    let args: Option<Vec<Expr>> = list
        .args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect();
    let Some(args) = args else {
        return;
    };
    let array = match (name.as_str(), args.as_slice()) {
        ("generate_subscripts", [array, dimension]) => call(
            "generate_series",
            vec![
                Expr::value(Value::Number("1".into(), false)),
                call("array_length", vec![array.clone(), dimension.clone()]),
            ],
        ),
        (crate::udf::system::pg_expandarray::NAME, [array]) => call(
            crate::udf::system::pg_expandarray::NAME,
            vec![array.clone()],
        ),
        _ => return,
    };
    *expr = call("unnest", vec![array]);
}

/// `(composite).field` (pgjdbc reads `(i.keys).x`): DataFusion takes only `['field']`
/// there, so it becomes `get_field(composite, 'field')`.
fn composite_field(expr: &mut Expr) {
    let Expr::CompoundFieldAccess { root, access_chain } = expr else {
        return;
    };
    if !matches!(root.as_ref(), Expr::Nested(_)) {
        return;
    }
    let fields: Option<Vec<String>> = access_chain
        .iter()
        .map(|access| match access {
            AccessExpr::Dot(Expr::Identifier(ident)) => Some(ident.value.clone()),
            _ => None,
        })
        .collect();
    let Some(fields) = fields else {
        return;
    };
    *expr = fields.into_iter().fold((**root).clone(), |value, field| {
        call(
            "get_field",
            vec![value, Expr::value(Value::SingleQuotedString(field))],
        )
    });
}

/// `name(args)`.
fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
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
    fn named_table_arguments_become_one_options_text() {
        assert_eq!(
            rewritten(
                "SELECT * FROM forecast('SELECT 1', horizon => 28, model => 'ets', \
                 level => [80, 95], shift => -1, fill => zero) AS f"
            ),
            "SELECT * FROM forecast('SELECT 1', 'horizon = 28, model = ets, level = 80 95, \
             shift = -1, fill = zero') AS f"
        );
        let plain = "SELECT * FROM forecast('SELECT 1', 28) JOIN t ON true";
        assert_eq!(rewritten(plain), plain);
    }

    #[test]
    fn set_returning_functions_become_unnest() {
        assert_eq!(
            rewritten("SELECT unnest(i.indkey), generate_subscripts(i.indkey, 1) FROM pg_index i"),
            "SELECT unnest(i.indkey), unnest(generate_series(1, array_length(i.indkey, 1))) \
             FROM pg_index i"
        );
        assert_eq!(
            rewritten("SELECT information_schema._pg_expandarray(i.indkey) AS keys FROM i"),
            "SELECT unnest(_pg_expandarray(i.indkey)) AS keys FROM i"
        );
        assert_eq!(
            rewritten("SELECT (i.keys).x FROM i WHERE a.b.c = 1"),
            "SELECT get_field((i.keys), 'x') FROM i WHERE a.b.c = 1"
        );
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
