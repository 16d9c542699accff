//! Version retention through the real binary: `citygrid import` with a `[retention]` section
//! lets old versions go (manifest and files), never the current or the previous one, and never
//! gives a version number out twice.

mod common;

use std::path::Path;
use std::process::Command;

use citygrid::store::{Retention, Store};

fn import_components(dir: &Path, file: &Path, config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_citygrid"))
        .args(["import", "components"])
        .arg(file)
        .arg("--data")
        .arg(dir)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn kept(dir: &Path) -> (u64, Vec<u64>) {
    let store = Store::open(dir).unwrap();
    let h = store.dataset("components").unwrap();
    (h.current, h.versions.iter().map(|v| v.version).collect())
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir.join("layers/components")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn imports_let_old_versions_go_but_keep_the_current_the_previous_and_the_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::tiny_world(&data);
    // The stored components version, exported as it is, is a valid survey layer to re-import.
    let survey = dir.path().join("components.fgb");
    std::fs::copy(data.join("layers/components/1.fgb"), &survey).unwrap();
    let config = dir.path().join("citygrid.toml");
    std::fs::write(&config, "[retention]\nkeep_versions = 2\nkeep_days = 0\n").unwrap();

    for _ in 0..4 {
        import_components(&data, &survey, &config);
    }
    assert_eq!(kept(&data), (5, vec![4, 5]), "the newest two (the current and the previous among them)");
    assert_eq!(files(&data), ["4.fgb", "5.fgb"], "the files of versions let go are removed");

    // Roll back to 4: 5 is now the previous one and stays.
    let mut store = Store::open_writer(&data, "test").unwrap().with_retention(Retention { keep_versions: 2, keep_days: 0 });
    store.set_current("components", 4).unwrap();
    drop(store);
    assert_eq!(kept(&data), (4, vec![4, 5]));

    // The next import is 6, never a reused number; 4 was current before it, so it stays too.
    let out = import_components(&data, &survey, &config);
    assert!(out.contains("components version 6 is current (was 4)"), "{out}");
    assert_eq!(kept(&data), (6, vec![4, 5, 6]));
    import_components(&data, &survey, &config);
    assert_eq!(kept(&data), (7, vec![6, 7]));
    assert_eq!(files(&data), ["6.fgb", "7.fgb"]);
    // The served city loads from what is kept.
    let loaded = Store::open(&data).unwrap().load_city(&|_, _| {}).unwrap();
    assert!(!loaded.city.components.is_empty());
}

#[test]
fn without_a_retention_section_recent_versions_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::tiny_world(&data);
    let survey = dir.path().join("components.fgb");
    std::fs::copy(data.join("layers/components/1.fgb"), &survey).unwrap();
    let config = dir.path().join("citygrid.toml");
    std::fs::write(&config, "").unwrap();
    for _ in 0..11 {
        import_components(&data, &survey, &config);
    }
    // Default: the newest 10, and anything younger than 30 days: all 12 of today's.
    assert_eq!(kept(&data).1, (1..=12).collect::<Vec<u64>>());
}
