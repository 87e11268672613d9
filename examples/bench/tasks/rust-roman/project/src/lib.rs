//! Roman numerals.

/// `n` in Roman numerals.
pub fn to_roman(n: u32) -> Option<String> {
    let table = [(1000, "M"), (500, "D"), (100, "C"), (50, "L"), (10, "X"), (5, "V"), (1, "I")];
    let mut n = n;
    let mut out = String::new();
    for (value, digits) in table {
        while n >= value {
            out.push_str(digits);
            n -= value;
        }
    }
    Some(out)
}
