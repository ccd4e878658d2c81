//! Coupon functions: reserve, redeem and release coupons, create and change pools.
//!
//! They hold the engine's [`Coupons`] service, so each engine registers its own
//! ([`functions`]). All the rows of one batch of a statement go to the committer as one
//! command: decided in row order and committed together (one sync), all or none. A
//! statement that fails part way keeps the batches committed before the failure; running
//! it again with the same request keys is safe, as they answer `duplicate:…` with their
//! first outcome.
//!
//! They are plain (not async) functions on purpose: DataFusion evaluates an async
//! function for every row before the projection, even inside a `CASE` branch that does
//! not apply, and a reservation must happen only where the query says. While one waits
//! for its commit it gives its runtime thread up ([`wait_for_commit`]), so many
//! connections still share one commit.

mod coupon_pool;
mod reserve_coupon;
mod settle_coupon;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, DocSection, ScalarUDF};
use futures::FutureExt;

use crate::coupons::{CouponError, Coupons, ReserveRequest, SettleKind};
use crate::udf::bitmap::{finish, row_count};

const SECTION: DocSection = DocSection {
    include: true,
    label: "Coupon Functions",
    description: Some(
        "Reserve coupons from a pool with no overselling, per-user limits, a budget and \
         idempotent request keys; every outcome is durable when the statement returns.",
    ),
};

/// The coupon functions over `coupons`.
pub fn functions(coupons: &Coupons) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(reserve_coupon::ReserveCoupon::new(coupons.clone())),
        ScalarUDF::new_from_impl(settle_coupon::SettleCoupon::new(
            SettleKind::Redeem,
            coupons.clone(),
        )),
        ScalarUDF::new_from_impl(settle_coupon::SettleCoupon::new(
            SettleKind::Release,
            coupons.clone(),
        )),
        ScalarUDF::new_from_impl(coupon_pool::CouponPool::create(coupons.clone())),
        ScalarUDF::new_from_impl(coupon_pool::CouponPool::alter(coupons.clone())),
    ]
}

/// One call of `reserve_coupon`, `redeem_coupon` or `release_coupon` that awaits its
/// commit instead of blocking a thread for it: what a prepared `SELECT
/// reserve_coupon($1, $2, $3)` runs ([`DirectCall`](crate::udf::DirectCall)). It answers
/// exactly as the function does for one row.
pub(crate) fn direct_call(udf: &ScalarUDF) -> Option<crate::udf::DirectCall> {
    let inner = udf.inner();
    if let Some(reserve) = inner.downcast_ref::<reserve_coupon::ReserveCoupon>() {
        let coupons = reserve.coupons.clone();
        return Some(Arc::new(move |args| {
            let coupons = coupons.clone();
            async move {
                let Some(request) = request_of(&args)? else {
                    return Ok(ScalarValue::Utf8(None));
                };
                let outcomes = coupons
                    .reserve_many_async(vec![request])
                    .await
                    .map_err(external)?;
                Ok(ScalarValue::Utf8(
                    outcomes.into_iter().next().map(|o| o.to_string()),
                ))
            }
            .boxed()
        }));
    }
    if let Some(settle) = inner.downcast_ref::<settle_coupon::SettleCoupon>() {
        let (kind, coupons) = (settle.kind, settle.coupons.clone());
        return Some(Arc::new(move |args| {
            let coupons = coupons.clone();
            async move {
                let Some(request) = request_of(&args)? else {
                    return Ok(ScalarValue::Utf8(None));
                };
                let settled = coupons
                    .settle_many_async(kind, vec![request])
                    .await
                    .map_err(external)?;
                Ok(ScalarValue::Utf8(
                    settled.into_iter().next().map(|s| s.to_string()),
                ))
            }
            .boxed()
        }));
    }
    None
}

/// The request of one call's `(pool, user_id, request_key)`, each as its text (as
/// [`text_columns`] casts them); `None` when one is NULL.
fn request_of(args: &[ScalarValue]) -> Result<Option<ReserveRequest>> {
    let mut texts = Vec::with_capacity(args.len());
    for arg in args {
        match arg.cast_to(&DataType::Utf8)? {
            ScalarValue::Utf8(Some(text)) => texts.push(text),
            _ => return Ok(None),
        }
    }
    let Ok([pool, user_id, request_key]) = <[String; 3]>::try_from(texts) else {
        return Err(DataFusionError::Plan(format!(
            "a coupon call takes 3 arguments, found {}",
            args.len()
        )));
    };
    Ok(Some(ReserveRequest {
        pool,
        user_id,
        request_key,
    }))
}

fn external(e: CouponError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The arguments as text columns of `rows` rows (other types compare as their text).
fn text_columns(args: &[ColumnarValue], rows: usize) -> Result<Vec<ArrayRef>> {
    args.iter()
        .map(|a| Ok(cast(&a.to_array(rows)?, &DataType::Utf8)?))
        .collect()
}

/// (pool, user_id, request_key) of every row where none is NULL, with those rows.
fn requests(columns: &[ArrayRef], rows: usize) -> (Vec<usize>, Vec<ReserveRequest>) {
    let [pool, user, key] = [0, 1, 2].map(|i| columns[i].as_string::<i32>());
    let mut at = Vec::with_capacity(rows);
    let mut requests = Vec::with_capacity(rows);
    for row in 0..rows {
        if pool.is_valid(row) && user.is_valid(row) && key.is_valid(row) {
            at.push(row);
            requests.push(ReserveRequest {
                pool: pool.value(row).to_string(),
                user_id: user.value(row).to_string(),
                request_key: key.value(row).to_string(),
            });
        }
    }
    (at, requests)
}

/// A text column with `answers` at rows `at` and NULL elsewhere.
fn answers_column(
    rows: usize,
    at: &[usize],
    answers: impl IntoIterator<Item = String>,
    args: &[ColumnarValue],
) -> Result<ColumnarValue> {
    let mut by_row: Vec<Option<String>> = vec![None; rows];
    for (&row, answer) in at.iter().zip(answers) {
        by_row[row] = Some(answer);
    }
    let mut out = StringBuilder::with_capacity(rows, rows * 8);
    for answer in by_row {
        out.append_option(answer);
    }
    finish(Arc::new(out.finish()), args)
}

fn rows_of(args: &[ColumnarValue], number_rows: usize) -> usize {
    row_count(args, number_rows)
}

/// Runs `wait` (a blocking wait for the committer) without starving the runtime: on a
/// multi-threaded runtime the thread hands its other tasks to a new worker first, so
/// other connections keep running and their calls join the same commit.
fn wait_for_commit<T>(wait: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}
