//! Runs the SQL written for both backends (`$1`, `$2`, … parameters) on a
//! rusqlite connection, with prepared statements cached per connection.

use rusqlite::{Connection, Row, ToSql};

use super::{StoreError, StoreResult};

/// Binds `values` to the `$1`, `$2`, … of `statement`. SQLite numbers `$N`
/// parameters by their first appearance, not by N, so each parameter's name
/// says which value it takes (read from the statement: no string is built).
fn bind_numbered(statement: &mut rusqlite::CachedStatement<'_>, values: &[&dyn ToSql]) -> StoreResult<()> {
    for index in 1..=statement.parameter_count() {
        let number = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok());
        match number.and_then(|n| values.get(n.wrapping_sub(1))) {
            Some(value) => statement.raw_bind_parameter(index, value)?,
            None => {
                return Err(StoreError::Other(format!(
                    "SQL parameter {index} is not one of $1..${}",
                    values.len()
                )))
            }
        }
    }
    Ok(())
}

/// Runs a statement; answers the rows it changed.
pub fn execute(conn: &Connection, sql: &str, values: &[&dyn ToSql]) -> StoreResult<usize> {
    let mut statement = conn.prepare_cached(sql)?;
    bind_numbered(&mut statement, values)?;
    Ok(statement.raw_execute()?)
}

/// Every row a statement answers, each through `map`.
pub fn query_all<T>(
    conn: &Connection,
    sql: &str,
    values: &[&dyn ToSql],
    mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    bind_numbered(&mut statement, values)?;
    let mut rows = statement.raw_query();
    let mut all = Vec::new();
    while let Some(row) = rows.next()? {
        all.push(map(row)?);
    }
    Ok(all)
}

/// The first row a statement answers, if any, through `map`.
pub fn query_first<T>(
    conn: &Connection,
    sql: &str,
    values: &[&dyn ToSql],
    map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Option<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    bind_numbered(&mut statement, values)?;
    let mut rows = statement.raw_query();
    Ok(match rows.next()? {
        Some(row) => Some(map(row)?),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_bind_by_number_not_by_position() {
        let conn = Connection::open_in_memory().unwrap();
        let joined = query_first(&conn, "SELECT $2 || $1 || $2", &[&"a", &"b"], |r| r.get::<_, String>(0)).unwrap();
        assert_eq!(joined.as_deref(), Some("bab"));
    }

    #[test]
    fn a_parameter_without_a_value_is_an_error_not_a_null() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(query_first(&conn, "SELECT $1, $3", &[&"a", &"b"], |r| r.get::<_, String>(0)).is_err());
    }

    #[test]
    fn a_cached_statement_starts_each_run_afresh() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        for v in 0..3 {
            assert_eq!(execute(&conn, "INSERT INTO t (v) VALUES ($1)", &[&v]).unwrap(), 1);
        }
        let all = query_all(&conn, "SELECT v FROM t WHERE v >= $1 ORDER BY v", &[&1], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
        assert_eq!(all, vec![1, 2]);
    }
}
