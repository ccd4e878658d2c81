//! `redeem_coupon(pool, user_id, request_key)` and `release_coupon(…)`: settle a
//! reservation, by the request key that made it.

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{answers_column, external, requests, rows_of, text_columns, wait_for_commit};
use crate::coupons::{Coupons, SettleKind};

#[derive(Debug)]
pub struct SettleCoupon {
    pub(super) kind: SettleKind,
    pub(super) coupons: Coupons,
    signature: Signature,
    documentation: Documentation,
}

impl PartialEq for SettleCoupon {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

impl Eq for SettleCoupon {}

impl std::hash::Hash for SettleCoupon {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}

impl SettleCoupon {
    pub fn new(kind: SettleKind, coupons: Coupons) -> Self {
        let documentation = match kind {
            SettleKind::Redeem => Documentation::builder(
                super::SECTION,
                "Redeems the reservation `reserve_coupon` made with `request_key`: the \
                 coupon is used and stays out of stock for good. Returns `redeemed`, \
                 `duplicate:redeemed` (redeemed before), `expired` (its hold time passed \
                 first), `already_released`, `not_reserved` (the reserve call did not \
                 reserve) or `not_found` (no reserve call used the key). `pool` and \
                 `user_id` must be the reservation's (23505 otherwise). Durable when the \
                 statement returns; NULL in any argument gives NULL.",
                "redeem_coupon(pool, user_id, request_key)",
            )
            .with_sql_example(
                "```sql\n> SELECT redeem_coupon('spring', 17, 'spring:17');\n+----------+\n| redeemed |\n+----------+\n```",
            ),
            SettleKind::Release => Documentation::builder(
                super::SECTION,
                "Releases the reservation `reserve_coupon` made with `request_key`: the \
                 coupon goes back to stock, and the user's limit and the pool's budget get \
                 it back. Returns `released`, `duplicate:released`, `expired`, \
                 `already_redeemed` (a redeemed coupon stays redeemed), `not_reserved` or \
                 `not_found`. `pool` and `user_id` must be the reservation's (23505 \
                 otherwise). Durable when the statement returns; NULL in any argument gives \
                 NULL.",
                "release_coupon(pool, user_id, request_key)",
            )
            .with_sql_example(
                "```sql\n> SELECT release_coupon('spring', 17, 'spring:17');\n+----------+\n| released |\n+----------+\n```",
            ),
        }
        .with_argument("pool", "The reservation's pool.")
        .with_argument("user_id", "The reservation's user.")
        .with_argument("request_key", "The key the reservation was made with.")
        .build();
        SettleCoupon {
            kind,
            coupons,
            signature: Signature::any(3, Volatility::Volatile),
            documentation,
        }
    }
}

impl ScalarUDFImpl for SettleCoupon {
    fn name(&self) -> &str {
        match self.kind {
            SettleKind::Redeem => "redeem_coupon",
            SettleKind::Release => "release_coupon",
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
        let (at, requests) = requests(&columns, rows);
        let settled = if requests.is_empty() {
            Vec::new()
        } else {
            wait_for_commit(|| self.coupons.settle_many(self.kind, requests)).map_err(external)?
        };
        answers_column(
            rows,
            &at,
            settled.iter().map(ToString::to_string),
            &args.args,
        )
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}
