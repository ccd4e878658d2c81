//! Identity data: the `user_identifiers` table (ground truth of who owns which identifier) and
//! the `identity_edges` table (what an identity-resolution job gets to see).

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use rand_chacha::ChaCha8Rng;

use super::people::{UserCursor, UserProfile};
use super::random::{AliasTable, Draw, Stream, mix64, stream_rng};
use super::{
    ACTIVITY_END_MICROS, BatchBuilder, DemoOptions, DemoTable, RowSource, batch, demo_table,
};

/// Share of users with a phone number (including the junk one).
const PHONE_SHARE: f64 = 0.97;

/// Share of users whose phone was recorded as [`JUNK_PHONE`].
const JUNK_PHONE_SHARE: f64 = 0.001;
const JUNK_PHONE: &str = "00000000000";

/// Share of users whose app also reported the device id [`JUNK_DEVICE`].
const JUNK_DEVICE_SHARE: f64 = 0.001;
const JUNK_DEVICE: &str = "null";

/// Chances of 1, 2 or 3 personal devices.
const DEVICE_COUNT_WEIGHTS: [f64; 3] = [0.6, 0.3, 0.1];

/// Households are blocks of this many consecutive users.
const HOUSEHOLD_SIZE: u64 = 4;

/// Share of households with a family tablet, used by 2–4 of its members. With ≈ 1.5 personal
/// devices per user this makes ≈ 2% of device ids shared.
const FAMILY_TABLET_SHARE: f64 = 0.12;

/// Users per store tablet (one per 20 000 users, at least one): hub nodes of the graph.
const USERS_PER_STORE_TABLET: u64 = 60;
const STORE_TABLET_PER_USERS: u64 = 20_000;

/// Most users on store tablets, for tiny data sets where one tablet would cover everybody.
const MAX_STORE_TABLET_SHARE: f64 = 0.05;

const OPENID_SHARE: f64 = 0.6;
const EMAIL_SHARE: f64 = 0.4;

/// Share of emails also recorded with a typo in the domain.
const EMAIL_TYPO_SHARE: f64 = 0.01;

/// The local part of emails starts with a family name.
const EMAIL_NAMES: [&str; 20] = [
    "wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun", "ma",
    "zhu", "hu", "guo", "he", "lin", "gao", "luo",
];

/// Email domains, their popularity, and the typo each is misspelt as.
const EMAIL_DOMAINS: [(&str, f64, &str); 8] = [
    ("qq.com", 0.35, "qq.con"),
    ("163.com", 0.20, "163.cm"),
    ("gmail.com", 0.12, "gmial.com"),
    ("126.com", 0.10, "126.cm"),
    ("outlook.com", 0.08, "outlok.com"),
    ("hotmail.com", 0.05, "hotmial.com"),
    ("sina.com", 0.05, "sina.con"),
    ("foxmail.com", 0.05, "foxmial.com"),
];

/// Chances of an edge being observed 1, 2, 3, 4 or 5 times.
const OBSERVATION_COUNT_WEIGHTS: [f64; 5] = [0.35, 0.25, 0.18, 0.12, 0.10];

/// Chance of an extra device–openid edge (a mini program opened on the phone's device) for
/// users with both.
const DEVICE_OPENID_EDGE_SHARE: f64 = 0.3;

/// Phone numbers are 1[3-8]XXXXXXXXX: 13 000 000 000 plus a number below this.
const PHONE_RANGE: u64 = 6_000_000_000;

/// Multiplier of the user id → number bijections: a prime that divides neither 6·10^9 nor 10^9,
/// so multiplying by it permutes the residues.
const SCRAMBLE_MULTIPLIER: u64 = 2_654_435_761;

/// Email numbers are below this.
const EMAIL_NUMBER_RANGE: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdKind {
    Phone,
    Device,
    OpenId,
    Email,
}

impl IdKind {
    fn name(self) -> &'static str {
        match self {
            IdKind::Phone => "phone",
            IdKind::Device => "device_id",
            IdKind::OpenId => "openid",
            IdKind::Email => "email",
        }
    }
}

/// Where an identifier comes from, which decides how it is shared and observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The user's own: no one else has it.
    Personal,
    /// Shared with 2–4 members of the household.
    FamilyTablet,
    /// Shared with many customers of a store.
    StoreTablet,
    /// A placeholder value that many users share.
    Junk,
    /// A misspelt second copy of the user's email.
    Typo,
}

#[derive(Debug, Clone)]
struct Identifier {
    kind: IdKind,
    origin: Origin,
    /// The value's bytes in [`UserIdentifiers::text`].
    value: Range<usize>,
}

/// One user's identifiers, reusing its buffers from user to user.
#[derive(Debug, Default)]
struct UserIdentifiers {
    text: String,
    items: Vec<Identifier>,
}

impl UserIdentifiers {
    fn clear(&mut self) {
        self.text.clear();
        self.items.clear();
    }

    fn value(&self, identifier: &Identifier) -> &str {
        &self.text[identifier.value.clone()]
    }

    /// Adds an identifier whose value `write` appends to the text.
    fn add(&mut self, kind: IdKind, origin: Origin, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        write(&mut self.text);
        self.items.push(Identifier {
            kind,
            origin,
            value: start..self.text.len(),
        });
    }

    /// The identifier the user's other identifiers are observed with: the phone, else the
    /// (correct) email, else the openid, else the first device.
    fn anchor(&self) -> Option<usize> {
        let find = |kind: IdKind| {
            self.items
                .iter()
                .position(|item| item.kind == kind && item.origin != Origin::Typo)
        };
        find(IdKind::Phone)
            .or_else(|| find(IdKind::Email))
            .or_else(|| find(IdKind::OpenId))
            .or_else(|| find(IdKind::Device))
    }
}

fn push_decimal(text: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    text.extend(digits[start..].iter().map(|&digit| char::from(digit)));
}

fn push_hex(text: &mut String, value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    text.extend(
        (0..16)
            .rev()
            .map(|nibble| char::from(HEX[((value >> (4 * nibble)) & 0xf) as usize])),
    );
}

/// Appends `chars` base64url characters of `value`, six bits each, most significant first.
fn push_base64(text: &mut String, value: u64, chars: u32) {
    const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    text.extend(
        (0..chars)
            .rev()
            .map(|digit| char::from(BASE64[((value >> (6 * digit)) & 0x3f) as usize])),
    );
}

/// The identifier model: which identifiers a user has, and their values.
///
/// Values are bijections of the user id (scrambled with seed-derived keys), so personal
/// identifiers are unique by construction: any sharing in the data is deliberate.
struct IdentityModel {
    /// Key of the device id, openid and household scrambles.
    key: u64,
    phone_offset: u64,
    email_offset: u64,
    store_tablets: u64,
    store_tablet_share: f64,
    device_counts: AliasTable,
    email_domains: AliasTable,
}

/// Tags of the inputs to the device-id bijection, so that the kinds of devices never collide.
const FAMILY_TABLET_TAG: u64 = 4;
const STORE_TABLET_TAG: u64 = 5;

impl IdentityModel {
    fn new(opts: DemoOptions) -> Self {
        let key = mix64(opts.seed ^ 0x1d3e_7a11_c0de_5eed);
        let store_tablets = (opts.users / STORE_TABLET_PER_USERS).max(1);
        let store_tablet_share = if opts.users == 0 {
            0.0
        } else {
            (store_tablets as f64 * USERS_PER_STORE_TABLET as f64 / opts.users as f64)
                .min(MAX_STORE_TABLET_SHARE)
        };
        let domain_weights: Vec<f64> = EMAIL_DOMAINS.iter().map(|(_, weight, _)| *weight).collect();
        Self {
            key,
            phone_offset: mix64(key ^ 1) % PHONE_RANGE,
            email_offset: mix64(key ^ 2) % EMAIL_NUMBER_RANGE,
            store_tablets,
            store_tablet_share,
            device_counts: AliasTable::new(&DEVICE_COUNT_WEIGHTS),
            email_domains: AliasTable::new(&domain_weights),
        }
    }

    fn push_device(&self, text: &mut String, tagged_id: u64) {
        push_hex(text, mix64(self.key ^ tagged_id));
    }

    /// How many members of the user's household share a family tablet (0 if none), and the
    /// household's index. A pure function of the household, so all members agree.
    fn family_tablet(&self, user_id: u64) -> (u64, u64) {
        let household = (user_id - 1) / HOUSEHOLD_SIZE;
        let hash = mix64(self.key.rotate_left(17) ^ household);
        let has_tablet = ((hash >> 11) as f64 / (1u64 << 53) as f64) < FAMILY_TABLET_SHARE;
        let members = if has_tablet { 2 + hash % 3 } else { 0 };
        (members, household)
    }

    /// Draws the user's identifiers into `out`. The draws happen in a fixed order: changing it
    /// changes both identity tables.
    fn draw(&self, user_id: u64, rng: &mut ChaCha8Rng, out: &mut UserIdentifiers) {
        out.clear();
        let phone = rng.unit();
        if phone < JUNK_PHONE_SHARE {
            out.add(IdKind::Phone, Origin::Junk, |text| {
                text.push_str(JUNK_PHONE)
            });
        } else if phone < PHONE_SHARE {
            let scrambled = (u128::from(user_id) * u128::from(SCRAMBLE_MULTIPLIER)
                + u128::from(self.phone_offset))
                % u128::from(PHONE_RANGE);
            out.add(IdKind::Phone, Origin::Personal, |text| {
                push_decimal(text, 13_000_000_000 + scrambled as u64)
            });
        }

        let personal_devices = 1 + self.device_counts.sample(rng) as u64;
        for device in 0..personal_devices {
            out.add(IdKind::Device, Origin::Personal, |text| {
                self.push_device(text, (user_id << 3) | device)
            });
        }
        let (tablet_members, household) = self.family_tablet(user_id);
        if (user_id - 1) % HOUSEHOLD_SIZE < tablet_members {
            out.add(IdKind::Device, Origin::FamilyTablet, |text| {
                self.push_device(text, (household << 3) | FAMILY_TABLET_TAG)
            });
        }
        if rng.chance(self.store_tablet_share) {
            let tablet = rng.below(self.store_tablets);
            out.add(IdKind::Device, Origin::StoreTablet, |text| {
                self.push_device(text, (tablet << 3) | STORE_TABLET_TAG)
            });
        }
        if rng.chance(JUNK_DEVICE_SHARE) {
            out.add(IdKind::Device, Origin::Junk, |text| {
                text.push_str(JUNK_DEVICE)
            });
        }

        if rng.chance(OPENID_SHARE) {
            let scrambled = mix64(self.key.rotate_left(29) ^ user_id);
            out.add(IdKind::OpenId, Origin::Personal, |text| {
                // WeChat-style: 'o' and 27 characters; the first 11 encode the unique scramble.
                text.push('o');
                push_base64(text, scrambled, 11);
                push_base64(text, mix64(scrambled), 10);
                push_base64(text, mix64(!scrambled), 6);
            });
        }

        if rng.chance(EMAIL_SHARE) {
            let name = EMAIL_NAMES[rng.below(EMAIL_NAMES.len() as u64) as usize];
            let (domain, _, typo) = EMAIL_DOMAINS[self.email_domains.sample(rng)];
            let number = (u128::from(user_id) * u128::from(SCRAMBLE_MULTIPLIER)
                + u128::from(self.email_offset))
                % u128::from(EMAIL_NUMBER_RANGE);
            let write_email = |text: &mut String, domain: &str| {
                text.push_str(name);
                text.push('.');
                push_decimal(text, number as u64);
                text.push('@');
                text.push_str(domain);
            };
            out.add(IdKind::Email, Origin::Personal, |text| {
                write_email(text, domain)
            });
            if rng.chance(EMAIL_TYPO_SHARE) {
                out.add(IdKind::Email, Origin::Typo, |text| write_email(text, typo));
            }
        }
    }
}

/// Walks the users and draws each one's identifiers: the part both identity tables share.
struct IdentifierWalk {
    seed: u64,
    users: UserCursor,
    model: IdentityModel,
    rng: ChaCha8Rng,
    /// The current user's identifiers.
    ids: UserIdentifiers,
}

impl IdentifierWalk {
    fn new(opts: DemoOptions) -> Self {
        Self {
            seed: opts.seed,
            users: UserCursor::new(opts),
            model: IdentityModel::new(opts),
            rng: stream_rng(opts.seed, Stream::Identifiers, 0),
            ids: UserIdentifiers::default(),
        }
    }

    /// Moves to the next user and draws its identifiers into `self.ids`.
    fn next_user(&mut self) -> Option<(UserProfile, Option<u64>)> {
        let (user, new_chunk) = self.users.next_user()?;
        if let Some(chunk) = new_chunk {
            self.rng = stream_rng(self.seed, Stream::Identifiers, chunk);
        }
        self.model
            .draw(user.user_id as u64, &mut self.rng, &mut self.ids);
        Some((user, new_chunk))
    }
}

// ---------------------------------------------------------------------------------------------
// user_identifiers

/// Average identifiers per user, measured; for the progress estimate only.
const IDENTIFIERS_PER_USER: f64 = 3.6;

fn user_identifiers_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("id_type", DataType::Utf8, false),
        Field::new("id_value", DataType::Utf8, false),
    ]))
}

pub(super) fn user_identifiers_table(opts: DemoOptions) -> DemoTable {
    let source = IdentifiersSource {
        walk: IdentifierWalk::new(opts),
    };
    let estimated_rows = (opts.users as f64 * IDENTIFIERS_PER_USER) as u64;
    demo_table(
        "user_identifiers",
        user_identifiers_schema(),
        estimated_rows,
        source,
    )
}

struct IdentifiersSource {
    walk: IdentifierWalk,
}

struct IdentifiersBuilder {
    user_id: Int64Builder,
    id_type: StringBuilder,
    id_value: StringBuilder,
}

impl BatchBuilder for IdentifiersBuilder {
    fn with_capacity(rows: usize) -> Self {
        Self {
            user_id: Int64Builder::with_capacity(rows),
            id_type: StringBuilder::with_capacity(rows, rows * 8),
            id_value: StringBuilder::with_capacity(rows, rows * 20),
        }
    }

    fn len(&self) -> usize {
        self.user_id.len()
    }

    fn finish(mut self, schema: SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.user_id.finish()),
            Arc::new(self.id_type.finish()),
            Arc::new(self.id_value.finish()),
        ];
        batch(schema, columns)
    }
}

impl RowSource for IdentifiersSource {
    type Builder = IdentifiersBuilder;

    fn append_next(&mut self, out: &mut IdentifiersBuilder) -> bool {
        let Some((user, _)) = self.walk.next_user() else {
            return false;
        };
        let ids = &self.walk.ids;
        for item in &ids.items {
            out.user_id.append_value(user.user_id);
            out.id_type.append_value(item.kind.name());
            out.id_value.append_value(ids.value(item));
        }
        true
    }
}

// ---------------------------------------------------------------------------------------------
// identity_edges

/// Average edge observations per user, measured; for the progress estimate only.
const EDGE_OBSERVATIONS_PER_USER: f64 = 6.5;

fn identity_edges_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id_a", DataType::Utf8, false),
        Field::new("type_a", DataType::Utf8, false),
        Field::new("id_b", DataType::Utf8, false),
        Field::new("type_b", DataType::Utf8, false),
        Field::new(
            "observed_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("source", DataType::Utf8, false),
    ]))
}

pub(super) fn identity_edges_table(opts: DemoOptions) -> DemoTable {
    let source = EdgesSource {
        walk: IdentifierWalk::new(opts),
        rng: stream_rng(opts.seed, Stream::Edges, 0),
        observation_counts: AliasTable::new(&OBSERVATION_COUNT_WEIGHTS),
        edges: Vec::new(),
    };
    let estimated_rows = (opts.users as f64 * EDGE_OBSERVATIONS_PER_USER) as u64;
    demo_table(
        "identity_edges",
        identity_edges_schema(),
        estimated_rows,
        source,
    )
}

/// The system that observes an identifier together with the user's anchor.
fn edge_source(identifier: &Identifier, anchor: IdKind) -> &'static str {
    match (identifier.origin, identifier.kind, anchor) {
        (Origin::StoreTablet, _, _) => "shop",
        (Origin::Typo, _, _) => "crm",
        (_, IdKind::Device, IdKind::OpenId) => "mini_program",
        (_, IdKind::Device, _) => "app_login",
        (_, IdKind::OpenId, _) => "mini_program",
        (_, IdKind::Email, IdKind::Phone) => "shop",
        (_, IdKind::Email | IdKind::Phone, _) => "crm",
    }
}

struct EdgesSource {
    walk: IdentifierWalk,
    rng: ChaCha8Rng,
    observation_counts: AliasTable,
    /// The current user's edges: indices of the two identifiers, and the source.
    edges: Vec<(usize, usize, &'static str)>,
}

struct EdgesBuilder {
    id_a: StringBuilder,
    type_a: StringBuilder,
    id_b: StringBuilder,
    type_b: StringBuilder,
    observed_at: TimestampMicrosecondBuilder,
    source: StringBuilder,
}

impl BatchBuilder for EdgesBuilder {
    fn with_capacity(rows: usize) -> Self {
        Self {
            id_a: StringBuilder::with_capacity(rows, rows * 18),
            type_a: StringBuilder::with_capacity(rows, rows * 9),
            id_b: StringBuilder::with_capacity(rows, rows * 12),
            type_b: StringBuilder::with_capacity(rows, rows * 6),
            observed_at: TimestampMicrosecondBuilder::with_capacity(rows),
            source: StringBuilder::with_capacity(rows, rows * 10),
        }
    }

    fn len(&self) -> usize {
        self.observed_at.len()
    }

    fn finish(mut self, schema: SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.id_a.finish()),
            Arc::new(self.type_a.finish()),
            Arc::new(self.id_b.finish()),
            Arc::new(self.type_b.finish()),
            Arc::new(self.observed_at.finish()),
            Arc::new(self.source.finish()),
        ];
        batch(schema, columns)
    }
}

impl RowSource for EdgesSource {
    type Builder = EdgesBuilder;

    fn append_next(&mut self, out: &mut EdgesBuilder) -> bool {
        let Some((user, new_chunk)) = self.walk.next_user() else {
            return false;
        };
        if let Some(chunk) = new_chunk {
            self.rng = stream_rng(self.walk.seed, Stream::Edges, chunk);
        }
        let ids = &self.walk.ids;
        let Some(anchor) = ids.anchor() else {
            return true;
        };
        let anchor_kind = ids.items[anchor].kind;
        self.edges.clear();
        for (index, item) in ids.items.iter().enumerate() {
            if index != anchor {
                self.edges
                    .push((index, anchor, edge_source(item, anchor_kind)));
            }
        }
        let first_device = ids
            .items
            .iter()
            .position(|item| item.kind == IdKind::Device);
        let openid = ids
            .items
            .iter()
            .position(|item| item.kind == IdKind::OpenId);
        if let (Some(device), Some(openid)) = (first_device, openid) {
            let already_linked = anchor == device || anchor == openid;
            if !already_linked && self.rng.chance(DEVICE_OPENID_EDGE_SHARE) {
                self.edges.push((device, openid, "mini_program"));
            }
        }

        let active_from = user.active_from_micros();
        for &(a, b, source) in &self.edges {
            let (a, b) = (&ids.items[a], &ids.items[b]);
            let observations = 1 + self.observation_counts.sample(&mut self.rng);
            for _ in 0..observations {
                let observed_at =
                    active_from + self.rng.below((ACTIVITY_END_MICROS - active_from) as u64) as i64;
                out.id_a.append_value(ids.value(a));
                out.type_a.append_value(a.kind.name());
                out.id_b.append_value(ids.value(b));
                out.type_b.append_value(b.kind.name());
                out.observed_at.append_value(observed_at);
                out.source.append_value(source);
            }
        }
        true
    }
}
