//! What the configuration reads from the machine: its host name (the
//! default device id), whether tutti runs as root, and where the outbox
//! goes by default.

/// A device id from a host name: lower case, and only letters, digits, `-`
/// and `_` (what MQTT topics and Home Assistant ids accept everywhere).
pub fn device_id_from(hostname: &str) -> String {
    let id: String = hostname
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() {
        "tutti".into()
    } else {
        id
    }
}

/// Where the outbox goes when neither the file, the environment nor a flag
/// sets `state.directory`: systemd's `$STATE_DIRECTORY`; for root,
/// `/var/lib/tutti` (`None` here: `Layers::check`'s own default); for anyone
/// else, who cannot write there, `$XDG_STATE_HOME/tutti`, else
/// `~/.local/state/tutti`. `var` reads the environment.
pub fn default_state_dir(var: impl Fn(&str) -> Option<String>, root: bool) -> Option<String> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("STATE_DIRECTORY") {
        return Some(dir);
    }
    if root {
        return None;
    }
    set("XDG_STATE_HOME")
        .map(|d| format!("{d}/tutti"))
        .or_else(|| set("HOME").map(|h| format!("{h}/.local/state/tutti")))
}

/// Whether tutti runs as root (effective user id 0).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// This machine's host name, as the kernel reports it.
pub fn hostname() -> String {
    // uname(2), not /proc/sys/kernel/hostname: the systemd unit hides
    // /proc/sys (ProcSubset=pid).
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_directory_defaults_to_systemd_s_then_root_s_then_the_user_s() {
        let env = |list: &'static [(&str, &str)]| {
            move |name: &str| {
                list.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let all = env(&[
            ("STATE_DIRECTORY", "/var/lib/private/tutti"),
            ("XDG_STATE_HOME", "/home/ana/.state"),
            ("HOME", "/home/ana"),
        ]);
        assert_eq!(
            default_state_dir(all, false).as_deref(),
            Some("/var/lib/private/tutti")
        );
        let user = env(&[
            ("XDG_STATE_HOME", "/home/ana/.state"),
            ("HOME", "/home/ana"),
        ]);
        assert_eq!(default_state_dir(user, true), None);
        assert_eq!(
            default_state_dir(user, false).as_deref(),
            Some("/home/ana/.state/tutti")
        );
        let home = env(&[("XDG_STATE_HOME", ""), ("HOME", "/home/ana")]);
        assert_eq!(
            default_state_dir(home, false).as_deref(),
            Some("/home/ana/.local/state/tutti")
        );
    }

    #[test]
    fn the_host_name_comes_from_uname_as_the_kernel_has_it() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(hostname(), kernel.trim());
        assert!(!hostname().is_empty());
    }
}
