fn main() {
    let s = deploy::spec::model::json_schema();
    let v = serde_json::json!({"valkey": {"max_storage_gb": 0, "max_ecpu_per_second": "3000"}});
    let val = jsonschema::validator_for(&s).unwrap();
    for e in val.iter_errors(&v) { println!("{} {:?}", e.instance_path, e.kind); }
    let v = serde_json::json!({"valkey": {"max_storage_gb": 1, "max_ecpu_per_second": "3000"}});
    for e in val.iter_errors(&v) { println!("{} {:?}", e.instance_path, e.kind); }
}
