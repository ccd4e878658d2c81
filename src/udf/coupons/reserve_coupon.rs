//! `reserve_coupon(pool, user_id, request_key)`: hold one coupon of a pool for a user.

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use std::sync::LazyLock;

use super::{answers_column, external, requests, rows_of, text_columns, wait_for_commit};
use crate::coupons::Coupons;

const NAME: &str = "reserve_coupon";

#[derive(Debug)]
pub struct ReserveCoupon {
    pub(super) coupons: Coupons,
    signature: Signature,
}

impl ReserveCoupon {
    pub fn new(coupons: Coupons) -> Self {
        ReserveCoupon {
            coupons,
            // Volatile: it writes, once per row, never folded away.
            signature: Signature::any(3, Volatility::Volatile),
        }
    }
}

impl PartialEq for ReserveCoupon {
    fn eq(&self, _other: &Self) -> bool {
        // One coupon service per engine, one instance per engine.
        true
    }
}

impl Eq for ReserveCoupon {}

impl std::hash::Hash for ReserveCoupon {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state)
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Reserves one coupon of `pool` for `user_id` and returns the outcome: `reserved` \
         (the coupon is held until the pool's hold time passes, unless redeemed), \
         `sold_out`, `user_limit`, `budget_exhausted`, `not_eligible` (the pool is for an \
         audience the user is not in; audience members are dense ids) or `pool_inactive` \
         (paused, closed, draft or outside its validity window). The first call with a \
         `request_key` decides its outcome for good: the same call again returns \
         `duplicate:` and that first outcome (e.g. `duplicate:reserved`), and the key with \
         another pool or user is an error (23505). Never oversells, whatever the number of \
         concurrent callers; the outcome is durable when the statement returns. An unknown \
         pool is an error (42704). NULL in any argument gives NULL and reserves nothing. \
         Calls are listed in `martdb.coupon_reservations`.",
        "reserve_coupon(pool, user_id, request_key)",
    )
    .with_sql_example(
        "```sql\n> SELECT user_id, reserve_coupon('spring', user_id, 'spring:' || user_id)\n  FROM unnest(bitmap_to_array(audience('shoe_buyers'))) AS t(user_id);\n+---------+-----------+\n| 17      | reserved  |\n| 42      | sold_out  |\n+---------+-----------+\n```",
    )
    .with_argument("pool", "The pool's name.")
    .with_argument("user_id", "Who the coupon is for; other types compare as their text.")
    .with_argument(
        "request_key",
        "Names this request: a retry with the same key never reserves twice.",
    )
    .build()
});

impl ScalarUDFImpl for ReserveCoupon {
    fn name(&self) -> &str {
        NAME
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
        let (at, requests) = requests(&columns, rows);
        let outcomes = if requests.is_empty() {
            Vec::new()
        } else {
            wait_for_commit(|| self.coupons.reserve_many(requests)).map_err(external)?
        };
        answers_column(
            rows,
            &at,
            outcomes.iter().map(ToString::to_string),
            &args.args,
        )
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}
