//! User profiles (the `users` table and the hidden traits other tables derive from them) and the
//! `user_tags` table.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, Date32Builder, Int32Builder, Int64Builder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use rand_chacha::ChaCha8Rng;

use super::activity::{CATEGORIES, CATEGORY_POPULARITY_EXPONENT};
use super::random::{AliasTable, Draw, Stream, stream_rng, zipf_weights};
use super::{
    ACTIVITY_START_MICROS, BatchBuilder, DemoOptions, DemoTable, HISTORY_DAYS, LAST_DAY, RowSource,
    USERS_PER_CHUNK, batch, day_start_micros, demo_table,
};

/// Cities, most populous first (drawn with Zipf popularity).
const CITIES: [&str; 30] = [
    "Shanghai",
    "Beijing",
    "Shenzhen",
    "Guangzhou",
    "Chengdu",
    "Hangzhou",
    "Wuhan",
    "Chongqing",
    "Nanjing",
    "Tianjin",
    "Suzhou",
    "Xian",
    "Changsha",
    "Zhengzhou",
    "Qingdao",
    "Dongguan",
    "Shenyang",
    "Ningbo",
    "Kunming",
    "Hefei",
    "Foshan",
    "Xiamen",
    "Fuzhou",
    "Jinan",
    "Dalian",
    "Harbin",
    "Wuxi",
    "Nanning",
    "Changchun",
    "Shijiazhuang",
];

const GENDERS: [&str; 3] = ["f", "m", "u"];
const GENDER_WEIGHTS: [f64; 3] = [0.52, 0.44, 0.04];

const CHANNELS: [&str; 5] = ["organic", "ads", "referral", "social", "store"];
const CHANNEL_WEIGHTS: [f64; 5] = [0.35, 0.25, 0.12, 0.18, 0.10];
const STORE_CHANNEL: u8 = 4;

/// Each level is this much rarer than the one below it.
const LEVEL_RATIO: f64 = 0.7;

/// Level from which a user is a VIP (tag `vip`) and, in the campaign, a sleeping dog.
pub(super) const VIP_LEVEL: i32 = 8;

/// Log-scale standard deviation of the activity multiplier: heavy-tailed activity.
const ACTIVITY_SIGMA: f64 = 1.0;

/// Activity multiplier from which a user is tagged `high_value` (the top ≈ 5%).
const HIGH_VALUE_ACTIVITY: f64 = 3.0;

/// Users who signed up less than this many days before the last day are tagged `new_user`.
const NEW_USER_DAYS: i32 = 30;

/// A user's attributes: the `users` columns plus hidden traits that drive the other tables.
#[derive(Debug, Clone, Copy)]
pub(super) struct UserProfile {
    pub user_id: i64,
    pub signup_day: i32,
    /// Index into [`CITIES`].
    pub city: u8,
    pub age: i32,
    /// Index into [`GENDERS`].
    pub gender: u8,
    pub level: i32,
    /// Index into [`CHANNELS`].
    pub channel: u8,
    /// Hidden: multiplier of the user's expected activity (log-normal, mean 1, heavy-tailed).
    pub activity: f64,
    /// Hidden: indices into `CATEGORIES` of the user's 1–3 preferred categories.
    preferred: [u8; 3],
    preferred_count: u8,
}

impl UserProfile {
    /// The user's preferred categories (1–3 distinct indices into `CATEGORIES`).
    pub(super) fn preferred_categories(&self) -> &[u8] {
        &self.preferred[..usize::from(self.preferred_count)]
    }

    /// When the user's activity can start: the later of signup and the activity window's start.
    pub(super) fn active_from_micros(&self) -> i64 {
        day_start_micros(self.signup_day).max(ACTIVITY_START_MICROS)
    }

    pub(super) fn city_name(&self) -> &'static str {
        CITIES[usize::from(self.city)]
    }
}

/// The distributions of user attributes.
struct ProfileModel {
    cities: AliasTable,
    genders: AliasTable,
    levels: AliasTable,
    channels: AliasTable,
    categories: AliasTable,
}

impl ProfileModel {
    fn new() -> Self {
        let level_weights: Vec<f64> = (0..10).map(|k| LEVEL_RATIO.powi(k)).collect();
        Self {
            cities: AliasTable::new(&zipf_weights(CITIES.len(), 1.0)),
            genders: AliasTable::new(&GENDER_WEIGHTS),
            levels: AliasTable::new(&level_weights),
            channels: AliasTable::new(&CHANNEL_WEIGHTS),
            categories: AliasTable::new(&zipf_weights(
                CATEGORIES.len(),
                CATEGORY_POPULARITY_EXPONENT,
            )),
        }
    }

    /// One user's profile. The draws happen in a fixed order: changing it changes every table.
    fn draw(&self, user_id: i64, rng: &mut ChaCha8Rng) -> UserProfile {
        // Growth: recent signups are more common (days ago ∝ u^1.2 puts more mass near 0).
        let days_ago = (f64::from(HISTORY_DAYS) * rng.unit().powf(1.2)) as i32;
        let city = self.cities.sample(rng) as u8;
        let age = (33.0 + 11.0 * rng.normal()).round().clamp(18.0, 75.0) as i32;
        let gender = self.genders.sample(rng) as u8;
        let level = self.levels.sample(rng) as i32 + 1;
        let channel = self.channels.sample(rng) as u8;
        let activity =
            (ACTIVITY_SIGMA * rng.normal() - ACTIVITY_SIGMA * ACTIVITY_SIGMA / 2.0).exp();
        let preferred_count = match rng.unit() {
            u if u < 0.5 => 1,
            u if u < 0.8 => 2,
            _ => 3,
        };
        let mut preferred = [0u8; 3];
        let mut found = 0;
        // Popular categories repeat often; a bounded number of tries keeps the draw count finite.
        for _ in 0..32 {
            if found == preferred_count {
                break;
            }
            let category = self.categories.sample(rng) as u8;
            if !preferred[..found].contains(&category) {
                preferred[found] = category;
                found += 1;
            }
        }
        UserProfile {
            user_id,
            signup_day: LAST_DAY - days_ago,
            city,
            age,
            gender,
            level,
            channel,
            activity,
            preferred,
            preferred_count: found as u8,
        }
    }
}

/// Walks users 1..=N in id order, generating the profiles of one chunk at a time.
pub(super) struct UserCursor {
    seed: u64,
    users: u64,
    model: ProfileModel,
    next_chunk: u64,
    profiles: Vec<UserProfile>,
    position: usize,
}

impl UserCursor {
    pub(super) fn new(opts: DemoOptions) -> Self {
        Self {
            seed: opts.seed,
            users: opts.users,
            model: ProfileModel::new(),
            next_chunk: 0,
            profiles: Vec::with_capacity(USERS_PER_CHUNK as usize),
            position: 0,
        }
    }

    /// The next user, or `None` after the last. When the user opens a new chunk, its index comes
    /// along, so that the caller can switch its own streams to that chunk.
    pub(super) fn next_user(&mut self) -> Option<(UserProfile, Option<u64>)> {
        let mut new_chunk = None;
        if self.position == self.profiles.len() {
            let chunk = self.next_chunk;
            let first_user = chunk * USERS_PER_CHUNK + 1;
            if first_user > self.users {
                return None;
            }
            let last_user = self.users.min(first_user + USERS_PER_CHUNK - 1);
            let mut rng = stream_rng(self.seed, Stream::Profiles, chunk);
            self.profiles.clear();
            for user_id in first_user..=last_user {
                self.profiles
                    .push(self.model.draw(user_id as i64, &mut rng));
            }
            self.next_chunk += 1;
            self.position = 0;
            new_chunk = Some(chunk);
        }
        let profile = self.profiles[self.position];
        self.position += 1;
        Some((profile, new_chunk))
    }
}

// ---------------------------------------------------------------------------------------------
// users

fn users_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("signup_date", DataType::Date32, false),
        Field::new("city", DataType::Utf8, false),
        Field::new("age", DataType::Int32, false),
        Field::new("gender", DataType::Utf8, false),
        Field::new("level", DataType::Int32, false),
        Field::new("channel", DataType::Utf8, false),
    ]))
}

pub(super) fn users_table(opts: DemoOptions) -> DemoTable {
    demo_table(
        "users",
        users_schema(),
        opts.users,
        UsersSource {
            users: UserCursor::new(opts),
        },
    )
}

struct UsersSource {
    users: UserCursor,
}

struct UsersBuilder {
    user_id: Int64Builder,
    signup_date: Date32Builder,
    city: StringBuilder,
    age: Int32Builder,
    gender: StringBuilder,
    level: Int32Builder,
    channel: StringBuilder,
}

impl BatchBuilder for UsersBuilder {
    fn with_capacity(rows: usize) -> Self {
        Self {
            user_id: Int64Builder::with_capacity(rows),
            signup_date: Date32Builder::with_capacity(rows),
            city: StringBuilder::with_capacity(rows, rows * 8),
            age: Int32Builder::with_capacity(rows),
            gender: StringBuilder::with_capacity(rows, rows),
            level: Int32Builder::with_capacity(rows),
            channel: StringBuilder::with_capacity(rows, rows * 7),
        }
    }

    fn len(&self) -> usize {
        self.user_id.len()
    }

    fn finish(mut self, schema: SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.user_id.finish()),
            Arc::new(self.signup_date.finish()),
            Arc::new(self.city.finish()),
            Arc::new(self.age.finish()),
            Arc::new(self.gender.finish()),
            Arc::new(self.level.finish()),
            Arc::new(self.channel.finish()),
        ];
        batch(schema, columns)
    }
}

impl RowSource for UsersSource {
    type Builder = UsersBuilder;

    fn append_next(&mut self, out: &mut UsersBuilder) -> bool {
        let Some((user, _)) = self.users.next_user() else {
            return false;
        };
        out.user_id.append_value(user.user_id);
        out.signup_date.append_value(user.signup_day);
        out.city.append_value(user.city_name());
        out.age.append_value(user.age);
        out.gender.append_value(GENDERS[usize::from(user.gender)]);
        out.level.append_value(user.level);
        out.channel
            .append_value(CHANNELS[usize::from(user.channel)]);
        true
    }
}

// ---------------------------------------------------------------------------------------------
// user_tags

/// The tags, most popular first. Twelve are the interest tags of the product categories (same
/// names as `CATEGORIES`).
const TAGS: [&str; 40] = [
    "price_sensitive",
    "app_user",
    "apparel",
    "food",
    "active",
    "beauty",
    "coupon_lover",
    "mini_program_user",
    "home",
    "white_collar",
    "electronics",
    "weekend_shopper",
    "night_owl",
    "mom_baby",
    "urban",
    "sports",
    "impulse_buyer",
    "churn_risk",
    "health",
    "brand_loyal",
    "parent",
    "books",
    "student",
    "toys",
    "gift_buyer",
    "pets",
    "reviewer",
    "live_stream_viewer",
    "dormant",
    "store_visitor",
    "senior",
    "travel",
    "early_adopter",
    "rural",
    "frequent_returner",
    "eco_friendly",
    "premium_member",
    "new_user",
    "high_value",
    "vip",
];

/// Most tags a user has.
const MAX_TAGS_PER_USER: usize = 8;

/// Index of a tag in [`TAGS`]; the names used are compile-time constants, so absence is a bug.
fn tag_index(name: &str) -> usize {
    TAGS.iter()
        .position(|tag| *tag == name)
        .expect("callers pass names from TAGS, compile-time constants")
}

/// Indices of the tags assigned by rules.
struct RuleTags {
    vip: usize,
    new_user: usize,
    high_value: usize,
    churn_risk: usize,
    dormant: usize,
    senior: usize,
    student: usize,
    parent: usize,
    store_visitor: usize,
    /// The interest tag of each category, by category index.
    interest: [usize; CATEGORIES.len()],
}

fn user_tags_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("tag", DataType::Utf8, false),
    ]))
}

/// Average tags per user, measured; for the progress estimate only.
const TAGS_PER_USER: f64 = 3.0;

pub(super) fn user_tags_table(opts: DemoOptions) -> DemoTable {
    let rules = RuleTags {
        vip: tag_index("vip"),
        new_user: tag_index("new_user"),
        high_value: tag_index("high_value"),
        churn_risk: tag_index("churn_risk"),
        dormant: tag_index("dormant"),
        senior: tag_index("senior"),
        student: tag_index("student"),
        parent: tag_index("parent"),
        store_visitor: tag_index("store_visitor"),
        interest: CATEGORIES.map(tag_index),
    };
    // Random tags follow Zipf popularity, except the tags that rules assign exactly (so that
    // `vip` ⇔ level ≥ 8 and the like stay exact).
    let mut weights = zipf_weights(TAGS.len(), 0.9);
    for exact in [rules.vip, rules.new_user, rules.high_value] {
        weights[exact] = 0.0;
    }
    let source = TagsSource {
        seed: opts.seed,
        users: UserCursor::new(opts),
        rng: stream_rng(opts.seed, Stream::Tags, 0),
        rules,
        random_tags: AliasTable::new(&weights),
    };
    let estimated_rows = (opts.users as f64 * TAGS_PER_USER) as u64;
    demo_table("user_tags", user_tags_schema(), estimated_rows, source)
}

struct TagsSource {
    seed: u64,
    users: UserCursor,
    rng: ChaCha8Rng,
    rules: RuleTags,
    random_tags: AliasTable,
}

/// The tags of one user, without repeats, at most [`MAX_TAGS_PER_USER`].
struct TagSet {
    seen: u64,
    tags: [u8; MAX_TAGS_PER_USER],
    count: usize,
}

impl TagSet {
    fn new() -> Self {
        Self {
            seen: 0,
            tags: [0; MAX_TAGS_PER_USER],
            count: 0,
        }
    }

    fn add(&mut self, tag: usize) {
        if self.count < MAX_TAGS_PER_USER && self.seen & (1 << tag) == 0 {
            self.seen |= 1 << tag;
            self.tags[self.count] = tag as u8;
            self.count += 1;
        }
    }
}

impl TagsSource {
    fn tags_of(&mut self, user: &UserProfile) -> TagSet {
        let rules = &self.rules;
        let rng = &mut self.rng;
        let mut tags = TagSet::new();
        // Exact rules first, so that the cap never drops them.
        if user.level >= VIP_LEVEL {
            tags.add(rules.vip);
        }
        if LAST_DAY - user.signup_day < NEW_USER_DAYS {
            tags.add(rules.new_user);
        }
        if user.activity >= HIGH_VALUE_ACTIVITY {
            tags.add(rules.high_value);
        }
        for &category in user.preferred_categories() {
            if rng.chance(0.7) {
                tags.add(rules.interest[usize::from(category)]);
            }
        }
        let signed_up_long_ago = LAST_DAY - user.signup_day > 180;
        if user.activity < 0.3 && signed_up_long_ago && rng.chance(0.6) {
            tags.add(rules.churn_risk);
        }
        if user.activity < 0.1 && rng.chance(0.8) {
            tags.add(rules.dormant);
        }
        if user.age >= 60 && rng.chance(0.7) {
            tags.add(rules.senior);
        }
        if user.age <= 22 && rng.chance(0.6) {
            tags.add(rules.student);
        }
        if (28..=45).contains(&user.age) && rng.chance(0.3) {
            tags.add(rules.parent);
        }
        if user.channel == STORE_CHANNEL && rng.chance(0.8) {
            tags.add(rules.store_visitor);
        }
        let random_count = match rng.unit() {
            u if u < 0.3 => 0,
            u if u < 0.6 => 1,
            u if u < 0.85 => 2,
            _ => 3,
        };
        for _ in 0..random_count {
            tags.add(self.random_tags.sample(rng));
        }
        tags
    }
}

struct TagsBuilder {
    user_id: Int64Builder,
    tag: StringBuilder,
}

impl BatchBuilder for TagsBuilder {
    fn with_capacity(rows: usize) -> Self {
        Self {
            user_id: Int64Builder::with_capacity(rows),
            tag: StringBuilder::with_capacity(rows, rows * 10),
        }
    }

    fn len(&self) -> usize {
        self.user_id.len()
    }

    fn finish(mut self, schema: SchemaRef) -> RecordBatch {
        batch(
            schema,
            vec![Arc::new(self.user_id.finish()), Arc::new(self.tag.finish())],
        )
    }
}

impl RowSource for TagsSource {
    type Builder = TagsBuilder;

    fn append_next(&mut self, out: &mut TagsBuilder) -> bool {
        let Some((user, new_chunk)) = self.users.next_user() else {
            return false;
        };
        if let Some(chunk) = new_chunk {
            self.rng = stream_rng(self.seed, Stream::Tags, chunk);
        }
        let tags = self.tags_of(&user);
        for &tag in &tags.tags[..tags.count] {
            out.user_id.append_value(user.user_id);
            out.tag.append_value(TAGS[usize::from(tag)]);
        }
        true
    }
}
