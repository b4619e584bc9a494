use std::path::PathBuf;

pub type Result<T, E = WorldError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid world config: {0}")]
    Config(String),
    #[error("refusing to generate into {}: the directory is not empty ({entries} entries); choose a new or empty directory", path.display())]
    NotEmpty { path: PathBuf, entries: usize },
    #[error("{}: exists and is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("encoding {what}: {msg}")]
    Encode { what: String, msg: String },
}

impl WorldError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WorldError::Io {
            path: path.into(),
            source,
        }
    }
}
