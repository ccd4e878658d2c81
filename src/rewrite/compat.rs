//! The PostgreSQL compatibility parser of `datafusion-pg-catalog`, without its rule that
//! replaces correlated subqueries in a select list by NULL.
//!
//! That rule (`RemoveSubqueryFromProjection`) makes catalog queries plan by answering
//! NULL for every correlated scalar subquery, and caps the uncorrelated ones at `LIMIT
//! 1`: `SELECT o.id, (SELECT count(*) FROM n WHERE n.order_id = o.id) FROM o` gave NULL
//! on every row. martdb plans such subqueries itself
//! ([`scalar_subquery`](super::scalar_subquery)), so statements with a subquery are
//! rewritten by every other rule of the parser, in its order.
//!
//! Two kinds of statement keep the parser's version:
//! - clients' catalog queries (they read `pg_catalog`, `information_schema` or a `pg_*`
//!   table): their select-list subqueries ask for what martdb does not have (column
//!   defaults, collations, identity sequences), where NULL is the right answer, and some
//!   have correlations DataFusion cannot decorrelate (psql's `\d` compares
//!   `a.attcollation <> t.typcollation`);
//! - the few whole client queries the parser replaces (a private list, matched on
//!   tokens): such a statement differs from the plain parse with all the rules applied.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{Statement, visit_relations};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_pg_catalog::sql::rules::{
    AliasDuplicatedProjectionRewrite, CurrentUserVariableToSessionUserFunctionCall,
    FixArrayLiteral, FixVersionColumnName, PrependUnqualifiedPgTableName,
    ResolveUnqualifiedIdentifier, RewriteArrayAnyAllOperation, RewritePgCatalogOperator,
    RewriteRegCastToSubquery, SqlStatementRewriteRule, StripCallableQualifier, StripCollate,
};

#[derive(Debug)]
pub(crate) struct CompatParser {
    parser: PostgresCompatibilityParser,
    /// The parser's rules in its order, less `RemoveSubqueryFromProjection`.
    rules: Vec<Arc<dyn SqlStatementRewriteRule>>,
}

impl CompatParser {
    pub(crate) fn new() -> Self {
        CompatParser {
            parser: PostgresCompatibilityParser::new(),
            rules: vec![
                Arc::new(AliasDuplicatedProjectionRewrite),
                Arc::new(ResolveUnqualifiedIdentifier),
                Arc::new(RewriteArrayAnyAllOperation),
                Arc::new(PrependUnqualifiedPgTableName),
                Arc::new(StripCallableQualifier),
                Arc::new(FixArrayLiteral),
                Arc::new(CurrentUserVariableToSessionUserFunctionCall),
                Arc::new(StripCollate),
                Arc::new(RewritePgCatalogOperator),
                Arc::new(RewriteRegCastToSubquery::new()),
                Arc::new(FixVersionColumnName),
            ],
        }
    }

    /// `statement` rewritten by the parser's rules (but the one above).
    pub(crate) fn rewrite(&self, statement: Statement) -> Statement {
        self.rules.iter().fold(statement, |s, rule| rule.rewrite(s))
    }

    /// The statements of `sql`, rewritten for DataFusion.
    pub(crate) fn parse(&self, sql: &str) -> Result<Vec<Statement>, ParserError> {
        let statements = self.parser.parse(sql)?;
        if !may_have_subquery(sql) {
            return Ok(statements);
        }
        let Ok(plain) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
            return Ok(statements);
        };
        if plain.len() != statements.len() {
            return Ok(statements);
        }
        Ok(plain
            .into_iter()
            .zip(statements)
            .map(|(plain, theirs)| {
                if reads_catalog(&plain) || self.parser.rewrite(plain.clone()) != theirs {
                    // A client's catalog query, or a whole query the parser replaced.
                    theirs
                } else {
                    self.rewrite(plain)
                }
            })
            .collect())
    }
}

/// Whether `statement` reads the PostgreSQL catalog (`pg_catalog`, `information_schema`
/// or a `pg_*` table).
fn reads_catalog(statement: &Statement) -> bool {
    visit_relations(statement, |name| {
        let catalog = name.0.iter().any(|part| {
            part.as_ident().is_some_and(|ident| {
                let value = ident.value.to_ascii_lowercase();
                value == "pg_catalog" || value == "information_schema" || value.starts_with("pg_")
            })
        });
        if catalog {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

/// Whether `sql` may hold a subquery: `(` then `SELECT`, spaces between.
fn may_have_subquery(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        b == b'(' && {
            // `(` is ASCII, so i + 1 is a char boundary; 6 bytes on may not be.
            let rest = sql[i + 1..].trim_start();
            rest.get(..6)
                .is_some_and(|word| word.eq_ignore_ascii_case("select"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subquery_detection_survives_multibyte_text() {
        // Found by the wire fuzzer: slicing 6 bytes into 'é' panicked.
        assert!(!may_have_subquery("SELECT (aaaé"));
        assert!(!may_have_subquery("(ü"));
        assert!(may_have_subquery("SELECT x FROM (  select 1)"));
    }

    #[test]
    fn correlated_subqueries_in_a_select_list_are_kept() {
        let parser = CompatParser::new();
        let sql = "SELECT o.id, (SELECT count(*) FROM n WHERE n.order_id = o.id) FROM o";
        assert!(!reads_catalog(
            &Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap()[0]
        ));
        let statement = parser.parse(sql).unwrap().remove(0).to_string();
        assert!(statement.contains("(SELECT count(*)"), "{statement}");
        // The library's own parser answers NULL there.
        let theirs = PostgresCompatibilityParser::new()
            .parse(sql)
            .unwrap()
            .remove(0);
        assert!(theirs.to_string().contains("NULL"), "{theirs}");
        // Its other rules still apply.
        let cast = parser
            .parse("SELECT (SELECT 1) AS one, 'pg_class'::regclass")
            .unwrap()
            .remove(0)
            .to_string();
        assert!(!cast.to_lowercase().contains("::regclass"), "{cast}");
    }

    #[test]
    fn catalog_queries_keep_the_parser_version() {
        let sql = "SELECT a.attname, (SELECT c.collname FROM pg_catalog.pg_collation c \
                   WHERE c.oid = a.attcollation) FROM pg_attribute a";
        let ours = CompatParser::new().parse(sql).unwrap();
        let theirs = PostgresCompatibilityParser::new().parse(sql).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn subqueries_are_found_in_the_text() {
        assert!(may_have_subquery("select (  SELECT 1)"));
        assert!(may_have_subquery("x IN (select y from t)"));
        assert!(!may_have_subquery("SELECT count(*) FROM t"));
        assert!(!may_have_subquery("SELECT (1 + 2)"));
    }
}
