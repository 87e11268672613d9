use roman::to_roman;

#[test]
fn subtractive_pairs() {
    assert_eq!(to_roman(4).as_deref(), Some("IV"));
    assert_eq!(to_roman(1994).as_deref(), Some("MCMXCIV"));
    assert_eq!(to_roman(3999).as_deref(), Some("MMMCMXCIX"));
}

#[test]
fn out_of_range_has_no_numeral() {
    assert_eq!(to_roman(0), None);
    assert_eq!(to_roman(4000), None);
}
