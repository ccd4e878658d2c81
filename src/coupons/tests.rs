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
