//! The size of the conditional writes a table sends, against etcd's `--max-txn-ops`.

use std::sync::{Arc, Mutex};

use super::super::engine::{self, Check, Db, IDb, ITree, Write};
use super::{MOST_TXN_OPS, Swap, UniqueTable};

/// sled with conditional multi-key writes (applied one key at a time: the tests run alone),
/// recording the most conditions and writes one of them carried.
struct Recording {
    inner: Db,
    most: Arc<Mutex<(usize, usize)>>,
}

impl IDb for Recording {
    fn open_tree(&self, name: &str) -> engine::Result<Arc<dyn ITree>> {
        Ok(self.inner.open_tree(name)?.0)
    }

    fn generate_id(&self) -> engine::Result<u64> {
        self.inner.generate_id()
    }

    fn flush(&self) -> engine::Result<()> {
        self.inner.flush()
    }

    fn is_empty(&self) -> engine::Result<bool> {
        self.inner.is_empty()
    }

    fn transact(&self, checks: &[Check<'_>], writes: &[Write<'_>]) -> engine::Result<Option<bool>> {
        {
            let mut most = self.most.lock().unwrap();
            most.0 = most.0.max(checks.len());
            most.1 = most.1.max(writes.len());
        }
        for c in checks {
            if c.tree.get(c.key)?.as_deref() != c.holds {
                return Ok(Some(false));
            }
        }
        for w in writes {
            match w.value {
                Some(v) => w.tree.insert(w.key, v)?,
                None => w.tree.remove(w.key)?,
            };
        }
        Ok(Some(true))
    }
}

#[test]
fn no_write_carries_more_operations_than_the_bound() {
    let most = Arc::new(Mutex::new((0, 0)));
    let db = Db::new(Recording {
        inner: engine::sled::temporary(),
        most: most.clone(),
    });
    let table = UniqueTable::new(
        db.open_tree("records").unwrap(),
        db.open_tree("index").unwrap(),
        Arc::default(),
    )
    .atomic(&db);

    table.insert(b"1", b"alpha", b"v1".to_vec()).unwrap();
    let v1 = table.get(b"1").unwrap().unwrap();
    assert!(matches!(
        table.update(b"1", &v1, b"alpha", b"alpha", b"v2".to_vec()),
        Ok(Swap::Done)
    ));
    let v2 = table.get(b"1").unwrap().unwrap();
    // The largest: a rename.
    assert!(matches!(
        table.update(b"1", &v2, b"alpha", b"beta", b"v3".to_vec()),
        Ok(Swap::Done)
    ));
    assert_eq!(table.lookup(b"beta").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(table.lookup(b"alpha").unwrap(), None);
    let v3 = table.get(b"1").unwrap().unwrap();
    assert!(matches!(table.remove(b"1", &v3, b"beta"), Ok(Swap::Done)));

    let (checks, writes) = *most.lock().unwrap();
    assert_eq!((checks, writes), (2, 3), "a rename: 2 conditions, 3 writes");
    assert!(checks <= MOST_TXN_OPS && writes <= MOST_TXN_OPS);
}
