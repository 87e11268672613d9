use roman::to_roman;

#[test]
fn additive_numbers() {
    assert_eq!(to_roman(2026).as_deref(), Some("MMXXVI"));
}
