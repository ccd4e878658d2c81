//! Serialized bitmap bytes (the `BYTEA` that the bitmap functions take from users): they
//! are rejected, or read as a set that behaves as one.
#![no_main]

use martdb::bitmap::Bitmap;

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let Ok(bitmap) = Bitmap::from_bytes(input) else {
        return;
    };
    let bytes = bitmap.to_bytes();
    let again = Bitmap::from_bytes(&bytes).expect("a written bitmap reads back");
    assert_eq!(again.cardinality(), bitmap.cardinality());
    assert_eq!(again.to_bytes(), bytes, "the serialization is canonical");
    let other = Bitmap::from_values([3, 1000, 65_536, 1 << 33]);
    let (and, or) = (bitmap.and(&other), bitmap.or(&other));
    assert_eq!(
        and.cardinality() + or.cardinality(),
        bitmap.cardinality() + other.cardinality()
    );
    assert_eq!(
        bitmap.andnot(&other).cardinality() + and.cardinality(),
        bitmap.cardinality()
    );
    assert_eq!(
        bitmap.xor(&other).cardinality(),
        or.cardinality() - and.cardinality()
    );
    if let Some(max) = bitmap.maximum() {
        assert!(bitmap.contains(max));
    }
});
