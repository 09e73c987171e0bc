//! SQL both mirror destinations build the same way: matching staged rows to mirrored ones
//! by key, inserting staged rows, and moving a row to a new key. The staging table's
//! columns are `c0..cN` (source columns) and `m_op`, `m_lsn`, `m_toast`, `m_seq`.

use pgcdc_core::quote_ident;

/// One staged column: its name in the staging table and in the mirror, whether it is part
/// of the key, and (PostgreSQL only) its type.
pub(crate) struct Col {
    pub staged: String,
    pub target: String,
    pub key: bool,
    pub ty: String,
}

/// `a.<key> = b.<staged key> AND …`: a mirrored row (alias `target`) and a staged one.
pub(crate) fn key_match(cols: &[Col], target: &str, staged: &str) -> String {
    join_keys(cols, |c| {
        format!(
            "{target}.{} = {staged}.{}",
            quote_ident(&c.target),
            c.staged
        )
    })
}

/// `a.cK = b.cK AND …`: two staged rows with the same key.
pub(crate) fn staged_key_match(cols: &[Col], a: &str, b: &str) -> String {
    join_keys(cols, |c| format!("{a}.{s} = {b}.{s}", s = c.staged))
}

fn join_keys(cols: &[Col], f: impl Fn(&Col) -> String) -> String {
    cols.iter()
        .filter(|c| c.key)
        .map(f)
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Inserts the staged columns of the rows `from` selects; with `flag`, also the
/// soft-delete column (true for deletes).
pub(crate) fn insert_sql(target: &str, cols: &[Col], flag: Option<&str>, from: &str) -> String {
    let mut names: Vec<String> = cols.iter().map(|c| quote_ident(&c.target)).collect();
    let mut staged: Vec<String> = cols.iter().map(|c| c.staged.clone()).collect();
    if let Some(flag) = flag {
        names.push(quote_ident(flag));
        staged.push("(m_op = 'delete')".into());
    }
    format!(
        "INSERT INTO {target} ({}) SELECT {} FROM {from};\n",
        names.join(", "),
        staged.join(", ")
    )
}

/// A key change whose update keeps TOAST values (staged rows 0 and 1 are its delete and
/// update): the old row goes to the new key first. With soft deletes it is copied
/// instead, for the old key's delete to mark (a marked row at the new key makes room).
pub(crate) fn move_sql(target: &str, staging: &str, cols: &[Col], soft: Option<&str>) -> String {
    let Some(flag) = soft else {
        let set: Vec<String> = cols
            .iter()
            .filter(|c| c.key)
            .map(|c| format!("{} = n.{}", quote_ident(&c.target), c.staged))
            .collect();
        return format!(
            "UPDATE {target} AS _t SET {} FROM {staging} d, {staging} n WHERE d.m_seq = 0 AND n.m_seq = 1 AND {};\n",
            set.join(", "),
            key_match(cols, "_t", "d")
        );
    };
    let mut names: Vec<String> = cols.iter().map(|c| quote_ident(&c.target)).collect();
    names.push(quote_ident(flag));
    let mut values: Vec<String> = cols
        .iter()
        .map(|c| {
            if c.key {
                format!("n.{}", c.staged)
            } else {
                format!("_t.{}", quote_ident(&c.target))
            }
        })
        .collect();
    values.push("false".into());
    format!(
        "DELETE FROM {target} AS _t USING {staging} n WHERE n.m_seq = 1 AND {};\nINSERT INTO {target} ({}) SELECT {} FROM {target} _t, {staging} d, {staging} n WHERE d.m_seq = 0 AND n.m_seq = 1 AND {};\n",
        key_match(cols, "_t", "n"),
        names.join(", "),
        values.join(", "),
        key_match(cols, "_t", "d")
    )
}

/// The weight of a staged row in a multiset step: -1 for a delete, 0 for an update that
/// is not the second half of a key change (the row did not change), else 1.
pub(crate) const MULTISET_WEIGHT: &str = "CASE WHEN m_op = 'delete' THEN -1 WHEN m_op = 'update' AND (lag(m_op) OVER w IS DISTINCT FROM 'delete' OR lag(m_lsn) OVER w <> m_lsn) THEN 0 ELSE 1 END";
