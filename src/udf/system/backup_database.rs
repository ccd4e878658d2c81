//! `backup_database(dest)`: a consistent backup of the running database
//! ([`crate::storage::backup`]).

use std::path::Path;
use std::sync::{LazyLock, Weak};

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::storage::Storage;

/// `backup_database(dest) -> text`.
#[derive(Debug)]
pub struct BackupDatabase {
    signature: Signature,
    /// Weak: a function must not keep the database open.
    storage: Weak<Storage>,
}

impl PartialEq for BackupDatabase {
    fn eq(&self, other: &Self) -> bool {
        self.storage.ptr_eq(&other.storage)
    }
}

impl Eq for BackupDatabase {}

impl std::hash::Hash for BackupDatabase {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "backup_database".hash(state)
    }
}

impl BackupDatabase {
    pub fn new(storage: Weak<Storage>) -> Self {
        BackupDatabase {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
            storage,
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Backs up the running database into the directory `dest` (on the server's \
         machine; it must not exist yet) and returns what was copied. The backup is \
         one point in time for the catalog, dictionaries, coupons, rules and models, \
         and for every table an acknowledged state at or after it; statements go on \
         while it runs (writers of the state store wait only while its file is \
         copied). Restore it with `martdb restore DEST --data DIR`, or open it as a \
         data directory. Admin only (a read-only session gets 25006); local data \
         directories only.",
        "backup_database(dest)",
    )
    .with_sql_example(
        "```sql\n> SELECT backup_database('/backups/martdb-2026-11-23');\n42 files, 18311722 bytes\n```",
    )
    .with_argument("dest", "The directory to create, on the server's machine.")
    .build()
});

impl ScalarUDFImpl for BackupDatabase {
    fn name(&self) -> &str {
        "backup_database"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let storage = self
            .storage
            .upgrade()
            .ok_or_else(|| DataFusionError::Execution("the database is closed".into()))?;
        let dests = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Utf8)?;
        let dests = dests.as_string::<i32>();
        let mut out = StringBuilder::new();
        for row in 0..dests.len() {
            if dests.is_null(row) {
                out.append_null();
                continue;
            }
            let dest = Path::new(dests.value(row));
            let run = || crate::storage::backup::backup(&storage, dest);
            // Copying takes a while: on a multi-threaded runtime, let it move other
            // tasks off this thread (block_in_place is not allowed on the other kind).
            let multi_threaded = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            let summary = if multi_threaded {
                tokio::task::block_in_place(run)
            } else {
                run()
            }
            .map_err(|e| DataFusionError::External(Box::new(crate::Error::Storage(e))))?;
            out.append_value(format!("{summary} in {}", dest.display()));
        }
        super::super::bitmap::finish(std::sync::Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}
