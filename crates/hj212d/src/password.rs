//! `hj212d hash-password`: a console password in, its Argon2id hash (PHC form) out, for the
//! `password_hash` of a `[[users]]` entry. The password is read from stdin, never from the
//! command line (where `ps` and shell history would show it).

use std::io::BufRead;
use std::process::ExitCode;

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;

/// Shorter console passwords are refused.
const MIN_PASSWORD_CHARS: usize = 10;

pub(crate) fn hash_from_stdin() -> ExitCode {
    let mut line = String::new();
    if let Err(error) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("Error: cannot read the password from stdin: {error}");
        return ExitCode::from(crate::EX_DATAERR);
    }
    let password = line.strip_suffix('\n').map_or(line.as_str(), |l| l.strip_suffix('\r').unwrap_or(l));
    if password.chars().count() < MIN_PASSWORD_CHARS {
        eprintln!("Error: the password must be at least {MIN_PASSWORD_CHARS} characters");
        return ExitCode::from(crate::EX_DATAERR);
    }
    match Argon2::default().hash_password(password.as_bytes()) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("Error: cannot hash the password: {error}");
            ExitCode::from(crate::EX_SOFTWARE)
        }
    }
}
