//! `create_coupon_pool(pool, stock [, settings])` and `alter_coupon_pool(pool, settings)`.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use super::{answers_column, external, rows_of, text_columns, wait_for_commit};
use crate::coupons::{CouponError, Coupons, PoolSettings};

const SETTINGS: &str = "A JSON object; keys (all optional): `per_user_limit` (default 1), \
     `face_value` (minor units, default 0), `budget` (minor units, default no cap), \
     `valid_from` and `valid_until` (RFC 3339), `audience` (a saved audience; only its \
     members may reserve), `hold_seconds` (how long a reservation holds its coupon, \
     default 900), `status` (draft, active, paused or closed; default active) and `stock`.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Create,
    Alter,
}

#[derive(Debug)]
pub struct CouponPool {
    kind: Kind,
    coupons: Coupons,
    signature: Signature,
    documentation: Documentation,
}

impl PartialEq for CouponPool {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

impl Eq for CouponPool {}

impl std::hash::Hash for CouponPool {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state)
    }
}

impl CouponPool {
    pub fn create(coupons: Coupons) -> Self {
        CouponPool {
            kind: Kind::Create,
            coupons,
            signature: Signature::one_of(
                vec![TypeSignature::Any(2), TypeSignature::Any(3)],
                Volatility::Volatile,
            ),
            documentation: Documentation::builder(
                super::SECTION,
                "Creates a coupon pool of `stock` coupons and returns its status. An error \
                 when the pool exists (42710) or a setting is invalid (22023). Pools are \
                 listed, with live remaining stock, in `martdb.coupon_pools`.",
                "create_coupon_pool(pool, stock [, settings])",
            )
            .with_sql_example(
                "```sql\n> SELECT create_coupon_pool('spring', 1000,\n    '{\"per_user_limit\": 1, \"face_value\": 500, \"budget\": 400000, \"hold_seconds\": 600}');\n+--------+\n| active |\n+--------+\n```",
            )
            .with_argument("pool", "The new pool's name.")
            .with_argument("stock", "Coupons in the pool.")
            .with_argument("settings", SETTINGS)
            .build(),
        }
    }

    pub fn alter(coupons: Coupons) -> Self {
        CouponPool {
            kind: Kind::Alter,
            coupons,
            signature: Signature::any(2, Volatility::Volatile),
            documentation: Documentation::builder(
                super::SECTION,
                "Changes the settings named in `settings` and returns the pool's status: \
                 pause or close it, add stock, move its window. Stock and budget cannot go \
                 below what is reserved or redeemed, and a closed pool stays closed (22023). \
                 Reservations already made keep their face value and expiry.",
                "alter_coupon_pool(pool, settings)",
            )
            .with_sql_example(
                "```sql\n> SELECT alter_coupon_pool('spring', '{\"status\": \"paused\"}');\n+--------+\n| paused |\n+--------+\n```",
            )
            .with_argument("pool", "The pool's name.")
            .with_argument("settings", SETTINGS)
            .build(),
        }
    }

    fn settings(&self, pool: &str, json: Option<&str>) -> Result<PoolSettings> {
        let Some(json) = json else {
            return Ok(PoolSettings::default());
        };
        serde_json::from_str(json).map_err(|e| {
            external(CouponError::BadSettings {
                pool: pool.to_string(),
                message: format!("settings are not valid: {e}"),
            })
        })
    }
}

impl ScalarUDFImpl for CouponPool {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Create => "create_coupon_pool",
            Kind::Alter => "alter_coupon_pool",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = rows_of(&args.args, args.number_rows);
        let columns = text_columns(&args.args, rows)?;
        let names = columns[0].as_string::<i32>();
        let (stocks, settings) = match self.kind {
            Kind::Create => (Some(columns[1].as_string::<i32>()), columns.get(2)),
            Kind::Alter => (None, columns.get(1)),
        };
        let settings = settings.map(|s| s.as_string::<i32>());
        let mut at = Vec::new();
        let mut statuses = Vec::new();
        for row in 0..rows {
            if names.is_null(row) || stocks.is_some_and(|s| s.is_null(row)) {
                continue;
            }
            let pool = names.value(row);
            let json = settings.filter(|s| s.is_valid(row)).map(|s| s.value(row));
            let settings = self.settings(pool, json)?;
            let info = match stocks {
                Some(stocks) => {
                    let Ok(stock) = stocks.value(row).trim().parse::<u64>() else {
                        return Err(external(CouponError::BadSettings {
                            pool: pool.to_string(),
                            message: format!(
                                "stock {:?} is not a count of coupons",
                                stocks.value(row)
                            ),
                        }));
                    };
                    wait_for_commit(|| self.coupons.create_pool(pool, stock, &settings))
                }
                None => wait_for_commit(|| self.coupons.alter_pool(pool, &settings)),
            }
            .map_err(external)?;
            at.push(row);
            statuses.push(info.status.as_str().to_string());
        }
        answers_column(rows, &at, statuses, &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}
