use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::bitmap::Bitmap;
use crate::storage::StorageOptions;

fn open(dir: &std::path::Path) -> (Arc<Storage>, Coupons) {
    let options = StorageOptions {
        create_if_missing: true,
        ..Default::default()
    };
    let storage = Arc::new(Storage::open(dir.to_str().unwrap(), &options).unwrap());
    let coupons = Coupons::open(&storage, AudienceStore::new(&storage)).unwrap();
    (storage, coupons)
}

fn pool(coupons: &Coupons, name: &str) -> PoolInfo {
    coupons
        .pools()
        .unwrap()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap()
}

#[test]
fn expired_reservations_return_their_stock() {
    let dir = tempfile::tempdir().unwrap();
    let (_storage, coupons) = open(dir.path());
    let settings = PoolSettings {
        hold_seconds: Some(0.2),
        face_value: Some(100),
        ..Default::default()
    };
    coupons.create_pool("flash", 1, &settings).unwrap();
    assert_eq!(
        coupons.reserve("flash", "a", "k1").unwrap(),
        Outcome::Reserved
    );
    assert_eq!(
        coupons.reserve("flash", "b", "k2").unwrap(),
        Outcome::SoldOut
    );
    std::thread::sleep(Duration::from_millis(400));
    // Late redeem: the hold is over.
    assert_eq!(
        coupons.redeem("flash", "a", "k1").unwrap(),
        Settlement::Expired
    );
    assert_eq!(
        coupons.reserve("flash", "b", "k3").unwrap(),
        Outcome::Reserved
    );
    let info = pool(&coupons, "flash");
    assert_eq!((info.reserved, info.expired, info.budget_used), (1, 1, 100));
    // Untouched, a reservation expires on the committer's own clock.
    std::thread::sleep(Duration::from_millis(1500));
    let info = pool(&coupons, "flash");
    assert_eq!((info.reserved, info.expired, info.remaining()), (0, 2, 1));
    assert!(coupons.reconcile().unwrap().iter().all(|r| r.balanced()));
}

#[test]
fn a_restart_reads_exact_counters() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_storage, coupons) = open(dir.path());
        coupons
            .create_pool("p", 10, &PoolSettings::default())
            .unwrap();
        for user in 0..6 {
            let key = format!("k{user}");
            coupons.reserve("p", &user.to_string(), &key).unwrap();
        }
        coupons.redeem("p", "0", "k0").unwrap();
        coupons.release("p", "1", "k1").unwrap();
    }
    let (_storage, coupons) = open(dir.path());
    let info = pool(&coupons, "p");
    assert_eq!(
        (
            info.reserved,
            info.redeemed,
            info.released,
            info.remaining()
        ),
        (4, 1, 1, 5)
    );
    assert_eq!(
        coupons.reserve("p", "2", "k2").unwrap(),
        Outcome::Duplicate(Box::new(Outcome::Reserved))
    );
    assert_eq!(
        coupons.reserve("p", "2", "again").unwrap(),
        Outcome::UserLimit
    );
    assert!(coupons.reconcile().unwrap().iter().all(|r| r.balanced()));
}

#[test]
fn a_failing_command_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_storage, coupons) = open(dir.path());
    coupons
        .create_pool("p", 10, &PoolSettings::default())
        .unwrap();
    let request = |user: &str, key: &str| ReserveRequest {
        pool: "p".into(),
        user_id: user.into(),
        request_key: key.into(),
    };
    // The same key for two users within one command.
    let err = coupons
        .reserve_many(vec![request("a", "k"), request("b", "k")])
        .unwrap_err();
    assert!(matches!(err, CouponError::KeyReused { .. }), "{err}");
    let mut unknown = request("c", "k2");
    unknown.pool = "nope".into();
    let err = coupons
        .reserve_many(vec![request("c", "k1"), unknown])
        .unwrap_err();
    assert_eq!(err.sqlstate(), "42704");
    assert!(coupons.reservations().unwrap().is_empty());
    assert_eq!(pool(&coupons, "p").remaining(), 10);
}

#[test]
fn concurrent_callers_never_oversell() {
    let dir = tempfile::tempdir().unwrap();
    let (_storage, coupons) = open(dir.path());
    let settings = PoolSettings {
        per_user_limit: Some(2),
        ..Default::default()
    };
    coupons.create_pool("hot", 50, &settings).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let coupons = coupons.clone();
            std::thread::spawn(move || {
                let mut reserved = 0;
                for i in 0..40 {
                    // 20 users, each asked for by every thread.
                    let user = (i % 20).to_string();
                    let key = format!("t{t}-{i}");
                    if coupons.reserve("hot", &user, &key).unwrap() == Outcome::Reserved {
                        reserved += 1;
                    }
                }
                reserved
            })
        })
        .collect();
    let reserved: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    // 20 users x limit 2 = 40 < 50 coupons: demand, not stock, is the bound.
    assert_eq!(reserved, 40);
    let info = pool(&coupons, "hot");
    assert_eq!((info.reserved, info.refused), (40, 8 * 40 - 40));
    assert!(coupons.reconcile().unwrap().iter().all(|r| r.balanced()));
}

/// A copy of the data directory taken while the service runs is what a crash leaves:
/// redb at its last synced commit, the journal with every acknowledged batch. Opening it
/// decides the journaled batches again with their recorded audience answers, even after
/// the audience changed.
#[test]
fn the_journal_restores_acknowledged_batches_as_decided() {
    let live = tempfile::tempdir().unwrap();
    let (storage, coupons) = open(live.path());
    let audiences = AudienceStore::new(&storage);
    audiences
        .save("vip", "test", &Bitmap::from_values([1, 2]))
        .unwrap();
    let settings = PoolSettings {
        audience: Some("vip".into()),
        ..Default::default()
    };
    coupons.create_pool("vip-only", 10, &settings).unwrap();
    assert_eq!(
        coupons.reserve("vip-only", "1", "k1").unwrap(),
        Outcome::Reserved
    );
    assert_eq!(
        coupons.reserve("vip-only", "3", "k3").unwrap(),
        Outcome::NotEligible
    );
    assert_eq!(
        coupons.redeem("vip-only", "1", "k1").unwrap(),
        Settlement::Redeemed
    );
    let expected = coupons.reservations().unwrap();

    let crashed = tempfile::tempdir().unwrap();
    let state = live.path().join(crate::storage::STATE_DIR);
    let copy = crashed.path().join(crate::storage::STATE_DIR);
    std::fs::create_dir_all(&copy).unwrap();
    for file in std::fs::read_dir(&state).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), copy.join(file.file_name())).unwrap();
    }
    let options = StorageOptions {
        create_if_missing: true,
        ..Default::default()
    };
    let restored = Arc::new(Storage::open(crashed.path().to_str().unwrap(), &options).unwrap());
    // The audience changes before the journal is replayed.
    AudienceStore::new(&restored)
        .save("vip", "test", &Bitmap::from_values([3]))
        .unwrap();
    let again = Coupons::open(&restored, AudienceStore::new(&restored)).unwrap();
    assert_eq!(again.reservations().unwrap(), expected);
    let info = pool(&again, "vip-only");
    assert_eq!((info.redeemed, info.refused, info.remaining()), (1, 1, 9));
    assert!(again.reconcile().unwrap().iter().all(|r| r.balanced()));
    // Replayed batches keep their keys: a retry answers the first outcome.
    assert_eq!(
        again.reserve("vip-only", "3", "k3").unwrap(),
        Outcome::Duplicate(Box::new(Outcome::NotEligible))
    );
    // New calls see the new audience.
    assert_eq!(
        again.reserve("vip-only", "3", "k4").unwrap(),
        Outcome::Reserved
    );
}

/// Writes `seq` as the last batch number of the state store, as a damaged store may hold.
fn write_journal_seq(storage: &Storage, seq: u64) {
    let table = redb::TableDefinition::<(), u64>::new("coupon_journal");
    let txn = storage.kv().begin_write().unwrap();
    txn.open_table(table).unwrap().insert((), seq).unwrap();
    txn.commit().unwrap();
}

/// Guards the ledger's batch number: u64::MAX in the state store has no successor (`seq
/// + 1` panicked in debug builds, wrapped in release); it is reported as damage.
#[test]
fn a_batch_number_without_successor_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let options = StorageOptions {
        create_if_missing: true,
        ..Default::default()
    };
    let storage = Arc::new(Storage::open(dir.path().to_str().unwrap(), &options).unwrap());
    let is_damage = |err: &CouponError| {
        matches!(err, CouponError::Damaged { key, message }
            if key == "journal sequence"
                && message == &format!("batch number {} has no successor", u64::MAX))
            && err.sqlstate() == "XX001"
    };

    // At u64::MAX already: opening (which runs an empty batch) fails.
    write_journal_seq(&storage, u64::MAX);
    let err = Coupons::open(&storage, AudienceStore::new(&storage)).unwrap_err();
    assert!(is_damage(&err), "{err:?}");

    // One short of it: opening takes the last number; every later batch fails as a
    // whole and commits nothing, and the committer goes on answering.
    write_journal_seq(&storage, u64::MAX - 1);
    let coupons = Coupons::open(&storage, AudienceStore::new(&storage)).unwrap();
    for _ in 0..2 {
        let err = coupons
            .create_pool("p", 10, &PoolSettings::default())
            .unwrap_err();
        assert!(is_damage(&err), "{err:?}");
    }
    // Reads go on.
    assert!(coupons.pools().unwrap().is_empty());
    assert!(coupons.reconcile().unwrap().is_empty());
}

/// Guards `reconcile` against a damaged state store holding two pool records of one name
/// (its `expect("inserted above")` panicked): the pool is recounted once.
#[test]
fn reconcile_survives_two_pool_records_of_one_name() {
    use redb::ReadableTable;

    let dir = tempfile::tempdir().unwrap();
    let (storage, coupons) = open(dir.path());
    coupons
        .create_pool("p", 10, &PoolSettings::default())
        .unwrap();
    assert_eq!(coupons.reserve("p", "a", "k1").unwrap(), Outcome::Reserved);
    // The damage: the record of pool "p" again, under another key.
    let pools = redb::TableDefinition::<&str, &str>::new("coupon_pools");
    let txn = storage.kv().begin_write().unwrap();
    {
        let mut table = txn.open_table(pools).unwrap();
        let json = table.get("p").unwrap().unwrap().value().to_string();
        table.insert("p-copy", json.as_str()).unwrap();
    }
    txn.commit().unwrap();
    let named_p = coupons
        .pools()
        .unwrap()
        .into_iter()
        .filter(|p| p.name == "p")
        .count();
    assert_eq!(named_p, 2);

    let recount = coupons.reconcile().unwrap();
    assert_eq!(recount.len(), 1, "{recount:?}");
    assert_eq!(
        (recount[0].pool.as_str(), recount[0].reserved),
        ("p", (1, 1))
    );
    assert!(recount[0].balanced(), "{recount:?}");
    // The pool goes on, and reconcile with it.
    assert_eq!(coupons.reserve("p", "b", "k2").unwrap(), Outcome::Reserved);
    let recount = coupons.reconcile().unwrap();
    assert_eq!(recount.len(), 1, "{recount:?}");
    assert_eq!(recount[0].reserved.1, 2, "{recount:?}");
}
