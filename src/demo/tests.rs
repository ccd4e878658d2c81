//! Tests of the demo generator as a whole: determinism, sizes, schemas, and the statistical
//! properties the tables promise.

use std::collections::{HashMap, HashSet};

use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};

use super::activity::conversion_probabilities;
use super::*;

fn options(users: u64) -> DemoOptions {
    DemoOptions { users, seed: 7 }
}

fn table(opts: DemoOptions, name: &str) -> DemoTable {
    tables(opts)
        .into_iter()
        .find(|table| table.name == name)
        .expect("table exists")
}

fn collect(opts: DemoOptions, name: &str) -> Vec<RecordBatch> {
    table(opts, name).batches.collect()
}

fn row_count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn strings<'a>(batch: &'a RecordBatch, column: &str) -> &'a StringArray {
    batch
        .column_by_name(column)
        .expect("column exists")
        .as_string::<i32>()
}

fn i64s(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    let mut values = Vec::new();
    for batch in batches {
        values.extend(
            batch
                .column_by_name(column)
                .unwrap()
                .as_primitive::<Int64Type>()
                .values(),
        );
    }
    values
}

fn i32s(batches: &[RecordBatch], column: &str) -> Vec<i32> {
    let mut values = Vec::new();
    for batch in batches {
        values.extend(
            batch
                .column_by_name(column)
                .unwrap()
                .as_primitive::<Int32Type>()
                .values(),
        );
    }
    values
}

fn f64s(batches: &[RecordBatch], column: &str) -> Vec<f64> {
    let mut values = Vec::new();
    for batch in batches {
        values.extend(
            batch
                .column_by_name(column)
                .unwrap()
                .as_primitive::<Float64Type>()
                .values(),
        );
    }
    values
}

fn string_values(batches: &[RecordBatch], column: &str) -> Vec<String> {
    let mut values = Vec::new();
    for batch in batches {
        values.extend(
            strings(batch, column)
                .iter()
                .map(|value| value.unwrap_or("").to_owned()),
        );
    }
    values
}

#[test]
fn calendar_constants() {
    assert_eq!(LAST_DAY, 20_726);
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(weekday(LAST_DAY), 2, "2026-09-30 is a Wednesday");
    for day in [
        -1,
        0,
        59,
        365,
        10_000,
        11_016,
        11_017,
        LAST_DAY,
        LAST_DAY + 100,
    ] {
        assert_eq!(days_from_civil(year_of(day), 1, 1) + day_of_year(day), day);
        assert!((0..366).contains(&day_of_year(day)));
    }
    assert_eq!(day_of_year(days_from_civil(2026, 11, 11)), 314);
    assert_eq!(FIRST_ACTIVITY_DAY, days_from_civil(2026, 7, 3));
}

#[test]
fn same_options_give_identical_batches() {
    let opts = options(3_000);
    for (first, second) in tables(opts).into_iter().zip(tables(opts)) {
        let first: Vec<RecordBatch> = first.batches.take(2).collect();
        let second: Vec<RecordBatch> = second.batches.take(2).collect();
        assert_eq!(first, second);
    }
}

#[test]
fn different_seeds_give_different_data() {
    let a = tables(DemoOptions {
        users: 2_000,
        seed: 1,
    });
    let b = tables(DemoOptions {
        users: 2_000,
        seed: 2,
    });
    for (a, b) in a.into_iter().zip(b) {
        let name = a.name;
        let (a, b) = (
            a.batches.take(1).collect::<Vec<_>>(),
            b.batches.take(1).collect::<Vec<_>>(),
        );
        assert_ne!(a, b, "{name}");
    }
}

#[test]
fn default_options() {
    assert_eq!(
        DemoOptions::default(),
        DemoOptions {
            users: 100_000,
            seed: 42
        }
    );
}

#[test]
fn row_counts_for_a_thousand_users() {
    let opts = options(1_000);
    let expected: [(&str, usize, usize); 10] = [
        ("users", 1_000, 1_000),
        ("user_identifiers", 3_000, 4_500),
        ("identity_edges", 4_000, 10_000),
        ("user_tags", 1_500, 4_000),
        ("events", 14_000, 26_000),
        ("orders", 500, 1_100),
        ("campaign", 1_000, 1_000),
        ("touchpoints", 2_300, 3_700),
        ("coupon_pools", 20, 20),
        ("daily_sales", 36_000, 36_500),
    ];
    for table in tables(opts) {
        let (name, low, high) = expected
            .iter()
            .find(|(name, ..)| *name == table.name)
            .copied()
            .expect("known table");
        let estimate = table.estimated_rows as usize;
        let rows = row_count(&table.batches.collect::<Vec<_>>());
        assert!(
            (low..=high).contains(&rows),
            "{name}: {rows} rows, expected {low}..={high}"
        );
        // The estimate is for a progress bar: within a third is plenty.
        assert!(
            estimate * 3 >= rows * 2 && estimate * 3 <= rows * 4,
            "{name}: estimate {estimate} for {rows}"
        );
    }
}

#[test]
fn no_users_means_empty_user_tables() {
    for table in tables(options(0)) {
        let rows = row_count(&table.batches.collect::<Vec<_>>());
        match table.name {
            "coupon_pools" => assert_eq!(rows, 20),
            "daily_sales" => assert!(rows > 0),
            name => assert_eq!(rows, 0, "{name}"),
        }
    }
}

#[test]
fn batches_match_their_schemas_and_the_contract() {
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
    let contract: [(&str, &[(&str, DataType)]); 10] = [
        (
            "users",
            &[
                ("user_id", DataType::Int64),
                ("signup_date", DataType::Date32),
                ("city", DataType::Utf8),
                ("age", DataType::Int32),
                ("gender", DataType::Utf8),
                ("level", DataType::Int32),
                ("channel", DataType::Utf8),
            ],
        ),
        (
            "user_identifiers",
            &[
                ("user_id", DataType::Int64),
                ("id_type", DataType::Utf8),
                ("id_value", DataType::Utf8),
            ],
        ),
        (
            "identity_edges",
            &[
                ("id_a", DataType::Utf8),
                ("type_a", DataType::Utf8),
                ("id_b", DataType::Utf8),
                ("type_b", DataType::Utf8),
                ("observed_at", timestamp.clone()),
                ("source", DataType::Utf8),
            ],
        ),
        (
            "user_tags",
            &[("user_id", DataType::Int64), ("tag", DataType::Utf8)],
        ),
        (
            "events",
            &[
                ("event_id", DataType::Int64),
                ("user_id", DataType::Int64),
                ("event_type", DataType::Utf8),
                ("category", DataType::Utf8),
                ("ts", timestamp.clone()),
                ("amount", DataType::Float64),
            ],
        ),
        (
            "orders",
            &[
                ("order_id", DataType::Int64),
                ("user_id", DataType::Int64),
                ("ts", timestamp.clone()),
                ("category", DataType::Utf8),
                ("amount", DataType::Float64),
                ("coupon_pool_id", DataType::Int64),
            ],
        ),
        (
            "campaign",
            &[
                ("user_id", DataType::Int64),
                ("treatment", DataType::Int32),
                ("recency_days", DataType::Int32),
                ("frequency", DataType::Int32),
                ("monetary", DataType::Float64),
                ("age", DataType::Int32),
                ("level", DataType::Int32),
                ("city", DataType::Utf8),
                ("converted", DataType::Int32),
                ("revenue", DataType::Float64),
                ("true_uplift", DataType::Float64),
            ],
        ),
        (
            "touchpoints",
            &[
                ("user_id", DataType::Int64),
                ("ts", timestamp.clone()),
                ("channel", DataType::Utf8),
            ],
        ),
        (
            "coupon_pools",
            &[
                ("pool_id", DataType::Int64),
                ("name", DataType::Utf8),
                ("total_stock", DataType::Int64),
                ("per_user_limit", DataType::Int32),
                ("face_value", DataType::Float64),
                ("budget", DataType::Float64),
                ("valid_from", timestamp.clone()),
                ("valid_to", timestamp.clone()),
                ("status", DataType::Utf8),
                ("audience_tag", DataType::Utf8),
            ],
        ),
        (
            "daily_sales",
            &[
                ("store_id", DataType::Int32),
                ("product_id", DataType::Int32),
                ("day", DataType::Date32),
                ("units", DataType::Float64),
                ("revenue", DataType::Float64),
            ],
        ),
    ];
    let all = tables(options(12_000));
    assert_eq!(
        all.iter().map(|table| table.name).collect::<Vec<_>>(),
        contract.iter().map(|(name, _)| *name).collect::<Vec<_>>()
    );
    for (table, (_, columns)) in all.into_iter().zip(contract) {
        let actual: Vec<(&str, &DataType)> = table
            .schema
            .fields()
            .iter()
            .map(|field| (field.name().as_str(), field.data_type()))
            .collect();
        let expected: Vec<(&str, &DataType)> = columns
            .iter()
            .map(|(name, data_type)| (*name, data_type))
            .collect();
        assert_eq!(actual, expected, "{}", table.name);
        let schema = table.schema.clone();
        let name = table.name;
        let batches: Vec<RecordBatch> = table.batches.collect();
        for (index, batch) in batches.iter().enumerate() {
            assert_eq!(batch.schema(), schema, "{name}");
            let last = index + 1 == batches.len();
            // Batches are full-sized except the last; no batch is empty.
            assert!(batch.num_rows() > 0, "{name}");
            assert!(
                last || batch.num_rows() >= BATCH_ROWS,
                "{name}: batch of {}",
                batch.num_rows()
            );
            assert!(
                batch.num_rows() <= BATCH_ROWS + 20_000,
                "{name}: batch of {}",
                batch.num_rows()
            );
        }
    }
}

#[test]
fn users_are_plausible() {
    let users = collect(options(5_000), "users");
    assert_eq!(i64s(&users, "user_id"), (1..=5_000).collect::<Vec<i64>>());
    let first_signup = LAST_DAY - HISTORY_DAYS + 1;
    for batch in &users {
        let signups = batch
            .column_by_name("signup_date")
            .unwrap()
            .as_primitive::<Date32Type>();
        assert!(
            signups
                .values()
                .iter()
                .all(|day| (first_signup..=LAST_DAY).contains(day))
        );
    }
    let ages = i32s(&users, "age");
    assert!(ages.iter().all(|age| (18..=75).contains(age)));
    let levels = i32s(&users, "level");
    assert!(levels.iter().all(|level| (1..=10).contains(level)));
    let low = levels.iter().filter(|level| **level <= 3).count();
    assert!(low > levels.len() / 2, "levels skew low");
    let cities: HashSet<String> = string_values(&users, "city").into_iter().collect();
    assert!((20..=30).contains(&cities.len()));
    let genders: HashSet<String> = string_values(&users, "gender").into_iter().collect();
    assert_eq!(genders, ["f", "m", "u"].map(String::from).into());
    let channels: HashSet<String> = string_values(&users, "channel").into_iter().collect();
    assert_eq!(channels.len(), 5);
}

#[test]
fn events_follow_the_funnel() {
    let events = collect(options(2_000), "events");
    let mut counts: HashMap<String, usize> = HashMap::new();
    for event_type in string_values(&events, "event_type") {
        *counts.entry(event_type).or_default() += 1;
    }
    let count = |kind: &str| counts.get(kind).copied().unwrap_or(0);
    assert!(count("view") > count("click"), "{counts:?}");
    assert!(count("click") > count("cart"), "{counts:?}");
    assert!(count("cart") > count("order"), "{counts:?}");
    assert!(count("order") > 0, "{counts:?}");
    assert_eq!(counts.len(), 4);

    let ids = i64s(&events, "event_id");
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "dense, increasing ids"
    );
    let mut previous = (0, i64::MIN);
    for batch in &events {
        let users = batch
            .column_by_name("user_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        let ts = batch
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let amount = batch
            .column_by_name("amount")
            .unwrap()
            .as_primitive::<Float64Type>();
        let kinds = strings(batch, "event_type");
        for row in 0..batch.num_rows() {
            let (user, time) = (users.value(row), ts.value(row));
            assert!((ACTIVITY_START_MICROS..ACTIVITY_END_MICROS).contains(&time));
            assert!(
                user > previous.0 || (user == previous.0 && time >= previous.1),
                "user order, then time"
            );
            previous = (user, time);
            assert_eq!(amount.is_valid(row), kinds.value(row) == "order");
        }
    }
    // Heavy-tailed activity: the busiest 10% of users make far more than 10% of events.
    let mut per_user: HashMap<i64, usize> = HashMap::new();
    for user in i64s(&events, "user_id") {
        *per_user.entry(user).or_default() += 1;
    }
    let mut sizes: Vec<usize> = per_user.into_values().collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let top: usize = sizes[..200].iter().sum();
    assert!(
        top * 10 > ids.len() * 3,
        "top 10% of users have {top} of {} events",
        ids.len()
    );
}

#[test]
fn orders_are_the_order_events() {
    let opts = options(3_000);
    let events = collect(opts, "events");
    let orders = collect(opts, "orders");
    let mut order_events = Vec::new();
    for batch in &events {
        let kinds = strings(batch, "event_type");
        let categories = strings(batch, "category");
        let users = batch
            .column_by_name("user_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        let ts = batch
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let amount = batch
            .column_by_name("amount")
            .unwrap()
            .as_primitive::<Float64Type>();
        for row in (0..batch.num_rows()).filter(|row| kinds.value(*row) == "order") {
            let category = categories.value(row).to_owned();
            order_events.push((
                users.value(row),
                ts.value(row),
                category,
                amount.value(row).to_bits(),
            ));
        }
    }
    let mut order_rows = Vec::new();
    let mut coupons = 0;
    for batch in &orders {
        let categories = strings(batch, "category");
        let users = batch
            .column_by_name("user_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        let ts = batch
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let amount = batch
            .column_by_name("amount")
            .unwrap()
            .as_primitive::<Float64Type>();
        let pools = batch
            .column_by_name("coupon_pool_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let category = categories.value(row).to_owned();
            order_rows.push((
                users.value(row),
                ts.value(row),
                category,
                amount.value(row).to_bits(),
            ));
            if pools.is_valid(row) {
                coupons += 1;
                assert!((1..=20).contains(&pools.value(row)));
            }
        }
    }
    assert_eq!(order_rows.len(), order_events.len());
    assert!(!order_rows.is_empty());
    // Same multiset of (user, ts, category, amount); sort to ignore ties in time.
    order_events.sort();
    order_rows.sort();
    assert_eq!(order_rows, order_events);
    let share = f64::from(coupons) / order_rows.len() as f64;
    assert!((0.09..=0.21).contains(&share), "coupon share {share}");
    assert_eq!(
        i64s(&orders, "order_id"),
        (1..=order_rows.len() as i64).collect::<Vec<_>>()
    );
}

#[test]
fn identity_ground_truth_has_the_promised_traps() {
    let opts = options(20_000);
    let identifiers = collect(opts, "user_identifiers");
    let users = i64s(&identifiers, "user_id");
    let types = string_values(&identifiers, "id_type");
    let values = string_values(&identifiers, "id_value");
    let mut owners: HashMap<(&str, &str), HashSet<i64>> = HashMap::new();
    for ((user, kind), value) in users.iter().zip(&types).zip(&values) {
        owners
            .entry((kind.as_str(), value.as_str()))
            .or_default()
            .insert(*user);
    }
    let shared_by = |kind: &str, range: std::ops::RangeInclusive<usize>| {
        owners
            .iter()
            .filter(|((k, _), who)| *k == kind && range.contains(&who.len()))
            .count()
    };
    let devices = owners
        .keys()
        .filter(|(kind, _)| *kind == "device_id")
        .count();
    let family_shared = shared_by("device_id", 2..=4);
    let share = family_shared as f64 / devices as f64;
    assert!(
        (0.01..=0.04).contains(&share),
        "{family_shared} of {devices} devices shared by 2–4"
    );
    assert!(shared_by("device_id", 30..=usize::MAX) >= 1, "a hub device");
    assert!(
        owners
            .get(&("phone", "00000000000"))
            .is_some_and(|who| who.len() >= 5)
    );
    assert!(
        owners
            .get(&("device_id", "null"))
            .is_some_and(|who| who.len() >= 5)
    );
    // Personal phones, openids and emails are unique.
    for kind in ["phone", "openid", "email"] {
        let shared: Vec<_> = owners
            .iter()
            .filter(|((k, value), who)| *k == kind && *value != "00000000000" && who.len() > 1)
            .collect();
        assert!(shared.is_empty(), "{kind} shared: {shared:?}");
    }
    let phone_users = types.iter().filter(|kind| *kind == "phone").count();
    assert!(phone_users > 19_000);
    let typos = values
        .iter()
        .filter(|value| {
            value.ends_with("gmial.com") || value.ends_with(".con") || value.ends_with(".cm")
        })
        .count();
    assert!(typos > 20, "{typos} typo emails");

    // Every edge joins identifiers that exist, of the stated types.
    let edges = collect(opts, "identity_edges");
    let sources: HashSet<String> = string_values(&edges, "source").into_iter().collect();
    assert_eq!(
        sources,
        ["app_login", "crm", "mini_program", "shop"]
            .map(String::from)
            .into()
    );
    let mut cross_user = 0;
    for batch in &edges {
        let (id_a, type_a) = (strings(batch, "id_a"), strings(batch, "type_a"));
        let (id_b, type_b) = (strings(batch, "id_b"), strings(batch, "type_b"));
        for row in 0..batch.num_rows() {
            let a = owners
                .get(&(type_a.value(row), id_a.value(row)))
                .expect("edge end a is an identifier");
            let b = owners
                .get(&(type_b.value(row), id_b.value(row)))
                .expect("edge end b is an identifier");
            assert!(
                !a.is_disjoint(b),
                "an edge joins identifiers of a common user"
            );
            if a.len() > 1 || b.len() > 1 {
                cross_user += 1;
            }
        }
    }
    assert!(cross_user > 100, "shared identifiers appear in edges");
}

#[test]
fn tags_follow_their_rules() {
    let opts = options(5_000);
    let users = collect(opts, "users");
    let levels = i32s(&users, "level");
    let tags = collect(opts, "user_tags");
    let tag_users = i64s(&tags, "user_id");
    let tag_names = string_values(&tags, "tag");
    let vips: HashSet<i64> = tag_users
        .iter()
        .zip(&tag_names)
        .filter(|(_, tag)| *tag == "vip")
        .map(|(user, _)| *user)
        .collect();
    let high_levels: HashSet<i64> = levels
        .iter()
        .zip(1..)
        .filter(|(level, _)| **level >= 8)
        .map(|(_, user)| user)
        .collect();
    assert_eq!(vips, high_levels);
    let mut per_user: HashMap<i64, usize> = HashMap::new();
    for user in &tag_users {
        *per_user.entry(*user).or_default() += 1;
    }
    assert!(per_user.values().all(|count| *count <= 8));
    let distinct: HashSet<&String> = tag_names.iter().collect();
    assert!(distinct.len() >= 35, "{} distinct tags", distinct.len());
    let mut pairs: Vec<(i64, &String)> = tag_users.iter().copied().zip(&tag_names).collect();
    let before = pairs.len();
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), before, "no repeated tag per user");
}

#[test]
fn campaign_uplift_is_recoverable() {
    let campaign = collect(options(200_000), "campaign");
    let rows = row_count(&campaign);
    assert!((38_000..=42_000).contains(&rows), "{rows} campaign rows");
    let treatment = i32s(&campaign, "treatment");
    let converted = i32s(&campaign, "converted");
    let uplift = f64s(&campaign, "true_uplift");
    let treated = treatment.iter().filter(|t| **t == 1).count();
    let ratio = treated as f64 / rows as f64;
    assert!((0.48..=0.52).contains(&ratio), "treatment ratio {ratio}");
    let rate = |arm: i32| {
        let (conversions, size) = treatment
            .iter()
            .zip(&converted)
            .filter(|(t, _)| **t == arm)
            .fold((0, 0), |(c, n), (_, converted)| (c + converted, n + 1));
        f64::from(conversions) / f64::from(size)
    };
    let observed = rate(1) - rate(0);
    let expected = uplift.iter().sum::<f64>() / rows as f64;
    // Standard error of the difference is ≈ 0.004 here.
    assert!(
        (observed - expected).abs() < 0.015,
        "observed {observed}, true {expected}"
    );
    assert!(expected > 0.005, "mean uplift {expected}");
    // The heterogeneity is there: persuadables and sleeping dogs.
    assert!(uplift.iter().any(|u| *u > 0.1));
    assert!(uplift.iter().filter(|u| **u < -0.05).count() > rows / 100);
    assert!(uplift.iter().filter(|u| u.abs() < 0.01).count() > rows / 5);
    // Revenue only for converted users.
    let revenue = f64s(&campaign, "revenue");
    assert!(
        converted
            .iter()
            .zip(&revenue)
            .all(|(c, r)| (*c == 1) == (*r > 0.0))
    );
}

#[test]
fn campaign_features_agree_with_orders() {
    let opts = options(2_000);
    let campaign = collect(opts, "campaign");
    let orders = collect(opts, "orders");
    let mut frequency: HashMap<i64, i32> = HashMap::new();
    for user in i64s(&orders, "user_id") {
        *frequency.entry(user).or_default() += 1;
    }
    let users = i64s(&campaign, "user_id");
    assert_eq!(
        users,
        (1..=2_000).collect::<Vec<_>>(),
        "small data sets include every user"
    );
    let frequencies = i32s(&campaign, "frequency");
    let recency = i32s(&campaign, "recency_days");
    for ((user, f), r) in users.iter().zip(&frequencies).zip(&recency) {
        assert_eq!(*f, frequency.get(user).copied().unwrap_or(0), "user {user}");
        assert!(
            *r >= 0 && (*f == 0 || *r < ACTIVITY_DAYS),
            "user {user}: recency {r}, frequency {f}"
        );
    }
}

#[test]
fn outcome_model_has_the_documented_segments() {
    // Persuadable: ordered recently, mid level.
    let (p0, p1) = conversion_probabilities(3, 2, 5, 35);
    assert!(p1 - p0 > 0.1, "{p0} {p1}");
    // Sleeping dog: a high-level user.
    let (p0, p1) = conversion_probabilities(10, 3, 9, 35);
    assert!(p1 - p0 < -0.1, "{p0} {p1}");
    // Lost cause: long gone, never bought.
    let (p0, p1) = conversion_probabilities(300, 0, 2, 35);
    assert!(p0 < 0.02 && (p1 - p0).abs() < 0.005, "{p0} {p1}");
    // Sure thing: a frequent buyer of a level without persuadability.
    let (p0, p1) = conversion_probabilities(1, 60, 2, 60);
    assert!(p0 > 0.8 && p1 == p0, "{p0} {p1}");
}

#[test]
fn daily_sales_series_have_their_features() {
    let opts = options(1_000);
    let sales = collect(opts, "daily_sales");
    let stores = i32s(&sales, "store_id");
    let products = i32s(&sales, "product_id");
    let units = f64s(&sales, "units");
    let revenue = f64s(&sales, "revenue");
    assert!(stores.iter().all(|store| (1..=5).contains(store)));
    assert!(products.iter().all(|product| (1..=10).contains(product)));
    assert!(units.iter().all(|u| *u >= 0.0 && u.fract() == 0.0));
    assert!(
        units
            .iter()
            .zip(&revenue)
            .all(|(u, r)| (*u == 0.0) == (*r == 0.0))
    );
    let mut days_by_series: HashMap<(i32, i32), Vec<f64>> = HashMap::new();
    for ((store, product), units) in stores.iter().zip(&products).zip(&units) {
        days_by_series
            .entry((*store, *product))
            .or_default()
            .push(*units);
    }
    assert_eq!(days_by_series.len(), 50);
    let intermittent = days_by_series
        .values()
        .filter(|units| units.iter().filter(|u| **u == 0.0).count() > units.len() / 2)
        .count();
    assert!(intermittent >= 1, "an intermittent series");
    // Spikes: a day several times the series' median, in a series that is not intermittent.
    let spiky = days_by_series
        .values()
        .filter(|units| {
            let mut sorted = (*units).clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted[sorted.len() / 2];
            median > 0.0 && units.iter().any(|u| *u > 2.5 * median)
        })
        .count();
    assert!(spiky >= 3, "{spiky} series with spikes");
    // Weekends sell more than weekdays.
    let days = {
        let mut days = Vec::new();
        for batch in &sales {
            days.extend(
                batch
                    .column_by_name("day")
                    .unwrap()
                    .as_primitive::<Date32Type>()
                    .values(),
            );
        }
        days
    };
    let (mut weekend, mut weekday_units) = ((0.0, 0), (0.0, 0));
    for (day, units) in days.iter().zip(&units) {
        let bucket = if weekday(*day) >= 5 {
            &mut weekend
        } else {
            &mut weekday_units
        };
        bucket.0 += units;
        bucket.1 += 1;
    }
    assert!(weekend.0 / f64::from(weekend.1) > 1.1 * weekday_units.0 / f64::from(weekday_units.1));
}

#[test]
fn coupon_pools_are_fixed_in_size() {
    for users in [0, 1_000, 50_000] {
        let pools = collect(options(users), "coupon_pools");
        assert_eq!(row_count(&pools), 20);
        let statuses: HashSet<String> = string_values(&pools, "status").into_iter().collect();
        assert_eq!(
            statuses,
            ["draft", "active", "paused", "closed"]
                .map(String::from)
                .into()
        );
        let audience = pools[0].column_by_name("audience_tag").unwrap();
        assert!(audience.null_count() > 0 && audience.null_count() < 20);
    }
}
