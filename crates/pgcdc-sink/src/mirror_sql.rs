//! SQL every SQL mirror builds the same way, in its dialect's spelling: matching staged
//! rows to mirrored ones by key, the keyed and multiset merges, inserting staged rows,
//! moving a row to a new key, and column changes. The staging table's columns are
//! `c0..cN` (source columns) and `m_op`, `m_lsn`, `m_toast`, `m_seq`.

use pgcdc_core::{quote_ident, quote_literal};

use crate::sql_mirror::{Col, Dialect};

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

/// Upsert/delete by key: per key the last change of the step wins; a TOAST-unchanged
/// column keeps its previous value (the latest sent for the key earlier in the step, else
/// the mirror's); with `soft`, a delete keeps the row the mirror knew, marked, with its
/// last values (see [`crate::mirror`]).
pub(crate) fn keyed_sql<D: Dialect>(
    target: &str,
    cols: &[Col],
    moved: bool,
    unchanged: &[String],
    soft: Option<&str>,
) -> String {
    let staging = format!("{}_pgcdc_s", D::TEMP);
    let last = format!("{}_pgcdc_f", D::TEMP);
    let keys: Vec<&str> = cols
        .iter()
        .filter(|c| c.key)
        .map(|c| c.staged.as_str())
        .collect();
    let partition = keys.join(", ");
    let mut sql = String::new();
    if moved {
        sql.push_str(&move_sql(target, &staging, cols, soft));
    }
    // With soft deletes a deleted row keeps its last values: every column is "kept".
    let kept: Vec<(usize, &Col)> = cols
        .iter()
        .filter(|c| !c.key && (soft.is_some() || unchanged.contains(&c.target)))
        .enumerate()
        .collect();
    let mut windows = String::new();
    for (i, c) in &kept {
        // Which row last sent the value (its m_seq): the window sorts integers only, and
        // the value is fetched by a join (TOASTed values are large).
        windows.push_str(&format!(
            ", max(CASE WHEN m_op <> 'delete' AND NOT {} THEN m_seq END) OVER (PARTITION BY {partition}) AS m_src{i}",
            D::list_has("m_toast", &quote_literal(&c.target)),
        ));
    }
    if soft.is_some() {
        windows.push_str(&format!(
            ", count(*) FILTER (WHERE m_op <> 'delete') OVER (PARTITION BY {partition}) AS m_live"
        ));
    }
    let deleted = if soft.is_some() {
        " OR w.m_op = 'delete'"
    } else {
        ""
    };
    let mut select: Vec<String> = cols
        .iter()
        .map(|c| match kept.iter().find(|(_, k)| k.staged == c.staged) {
            Some((i, _)) => format!(
                "CASE WHEN {}{deleted} THEN CASE WHEN w.m_src{i} IS NOT NULL THEN p{i}.{s} ELSE _t.{t} END ELSE w.{s} END AS {s}",
                D::list_has("w.m_toast", &quote_literal(&c.target)),
                t = quote_ident(&c.target),
                s = c.staged
            ),
            None => format!("w.{}", c.staged),
        })
        .collect();
    if soft.is_some() {
        let first = cols
            .iter()
            .find(|c| c.key)
            .map(|c| quote_ident(&c.target))
            .unwrap_or_default();
        select.push(format!(
            "(w.m_live > 0 OR _t.{first} IS NOT NULL) AS m_known"
        ));
    }
    let mut join = if kept.is_empty() && soft.is_none() {
        String::new()
    } else {
        format!(" LEFT JOIN {target} _t ON {}", key_match(cols, "_t", "w"))
    };
    for (i, _) in &kept {
        join.push_str(&format!(
            " LEFT JOIN {staging} p{i} ON p{i}.m_seq = w.m_src{i}"
        ));
    }
    sql.push_str(&format!(
        "{} WITH w AS (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {partition} ORDER BY m_seq DESC) AS m_rn{windows} FROM {staging}) x WHERE m_rn = 1) SELECT w.m_op, {} FROM w{join};\n",
        D::create_temp("_pgcdc_f"),
        select.join(", ")
    ));
    sql.push_str(&format!(
        "DELETE FROM {target} AS _t USING {last} f WHERE {};\n",
        key_match(cols, "_t", "f")
    ));
    // With soft deletes, a deleted row the mirror knew comes back marked.
    let rows = if soft.is_some() {
        format!("{last} WHERE m_op <> 'delete' OR m_known")
    } else {
        format!("{last} WHERE m_op <> 'delete'")
    };
    sql.push_str(&insert_sql(target, cols, soft, &rows));
    sql.push_str(&format!("DROP TABLE {last};\n"));
    sql
}

/// Rows as a multiset: per distinct row, inserts minus deletes copies are added or removed
/// (rows compared in the dialect's [`Dialect::comparable`] form).
pub(crate) fn multiset_sql<D: Dialect>(target: &str, cols: &[Col]) -> String {
    let staging = format!("{}_pgcdc_s", D::TEMP);
    let counts = format!("{}_pgcdc_n", D::TEMP);
    let staged: Vec<&str> = cols.iter().map(|c| c.staged.as_str()).collect();
    let same: Vec<String> = cols
        .iter()
        .map(|c| {
            format!(
                "{} IS NOT DISTINCT FROM {}",
                D::comparable(&format!("_t.{}", quote_ident(&c.target))),
                D::comparable(&format!("n.{}", c.staged))
            )
        })
        .collect();
    let weighted = format!(
        "(SELECT *, {MULTISET_WEIGHT} AS m_w FROM {staging} WINDOW w AS (ORDER BY m_seq)) x"
    );
    let mut sql = format!(
        "{} SELECT *, row_number() OVER () AS m_i FROM ({}) y;\n",
        D::create_temp("_pgcdc_n"),
        D::per_distinct_row(&staged, &weighted)
    );
    sql.push_str(&format!(
        "DELETE FROM {target} WHERE {id} IN (SELECT r FROM (SELECT _t.{id} AS r, row_number() OVER (PARTITION BY n.m_i) AS rn, n.m_n FROM {target} _t JOIN {counts} n ON {} WHERE n.m_n < 0) x WHERE rn <= -m_n);\n",
        same.join(" AND "),
        id = D::ROW_ID
    ));
    sql.push_str(&insert_sql(
        target,
        cols,
        None,
        &format!("{counts} n, generate_series(1, n.m_n) WHERE n.m_n > 0"),
    ));
    sql.push_str(&format!("DROP TABLE {counts};\n"));
    sql
}

/// `ALTER TABLE`s taking `target` from columns `old` to `new` (same order, new ones at the
/// end); `flag`: the name and definition of an added soft-delete column.
pub(crate) fn alter_sql(
    target: &str,
    old: &[(String, String)],
    new: &[(String, String)],
    flag: Option<(&str, &str)>,
) -> String {
    let mut sql = String::new();
    for (i, (name, ty)) in new.iter().enumerate() {
        let q = quote_ident(name);
        match old.get(i) {
            Some((_, old_ty)) if old_ty == ty => {}
            Some(_) => sql.push_str(&format!(
                "ALTER TABLE {target} ALTER COLUMN {q} SET DATA TYPE {ty};\n"
            )),
            None => {
                let def = match flag {
                    Some((f, def)) if f == name => def,
                    _ => ty,
                };
                sql.push_str(&format!("ALTER TABLE {target} ADD COLUMN {q} {def};\n"));
            }
        }
    }
    sql
}
