"""SQLite schema as named, ordered migrations, numbered 0001, 0002, … (migrations.py
applies them, each with its record in `schema_migrations`, in one transaction). Never edit
a released migration: add one."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_records",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE records (
            rowid INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            user_id TEXT NOT NULL,
            agent_id TEXT,
            session_id TEXT,
            kind TEXT NOT NULL,
            role TEXT,
            name TEXT,
            text TEXT NOT NULL,
            sources TEXT NOT NULL DEFAULT '[]',
            metadata TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            valid_to TEXT,
            recorded_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            content_hash TEXT NOT NULL
        );
        CREATE INDEX records_user_time ON records (user_id, created_at, rowid);
        CREATE INDEX records_user_session ON records (user_id, session_id, created_at);
        CREATE TABLE versions (
            memory_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            user_id TEXT NOT NULL,
            event TEXT NOT NULL,
            text TEXT,
            content_hash TEXT NOT NULL,
            at TEXT NOT NULL,
            actor TEXT,
            reason TEXT,
            PRIMARY KEY (memory_id, version)
        ) WITHOUT ROWID;
        CREATE INDEX versions_user ON versions (user_id);
        """,
    ),
    (
        "0002_search_indexes",
        """
        CREATE VIRTUAL TABLE fts USING fts5 (
            text, owner, tokenize = 'porter unicode61 remove_diacritics 2'
        );
        INSERT INTO fts (rowid, text, owner) SELECT rowid, text, engram_user_key(user_id) FROM records;
        CREATE TABLE scopes (user_key TEXT PRIMARY KEY, generation INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
        CREATE TABLE vectors (
            vid INTEGER PRIMARY KEY AUTOINCREMENT,
            record_rowid INTEGER NOT NULL UNIQUE,
            user_key TEXT NOT NULL,
            vec BLOB NOT NULL
        );
        CREATE INDEX vectors_user ON vectors (user_key, vid);
        CREATE TABLE vector_removals (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            user_key TEXT NOT NULL,
            vid INTEGER NOT NULL
        );
        CREATE INDEX vector_removals_user ON vector_removals (user_key, seq);
        """,
    ),
    (
        "0003_derived_memories",
        """
        ALTER TABLE records ADD COLUMN slot TEXT;
        ALTER TABLE records ADD COLUMN expired_at TEXT;
        CREATE INDEX records_slot ON records (user_id, slot) WHERE slot IS NOT NULL;
        CREATE TABLE derivations (
            memory_id TEXT NOT NULL,
            turn_id TEXT NOT NULL,
            turn_sources TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (memory_id, turn_id)
        ) WITHOUT ROWID;
        CREATE INDEX derivations_turn ON derivations (turn_id);
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id TEXT NOT NULL,
            agent_id TEXT,
            session_id TEXT,
            record_ids TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            not_before TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX jobs_ready ON jobs (state, not_before, id);
        CREATE INDEX jobs_user ON jobs (user_id);
        """,
    ),
    (
        "0004_lifecycle",
        """
        ALTER TABLE derivations ADD COLUMN suffices INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    (
        "0005_links",
        """
        CREATE TABLE links (
            src TEXT NOT NULL,
            type TEXT NOT NULL,
            dst TEXT NOT NULL,
            sources TEXT NOT NULL DEFAULT '[]',
            suffices INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (src, type, dst)
        ) WITHOUT ROWID;
        CREATE INDEX links_dst ON links (dst, type);
        INSERT INTO links (src, type, dst, sources, suffices)
            SELECT memory_id, 'derived_from', turn_id, turn_sources, suffices FROM derivations;
        DROP TABLE derivations;
        INSERT OR IGNORE INTO links (src, type, dst)
            SELECT substr(v.reason, 15), 'supersedes', v.memory_id FROM versions v
            WHERE v.event = 'supersede' AND v.reason LIKE 'superseded by %'
            AND v.version = (SELECT max(w.version) FROM versions w WHERE w.memory_id = v.memory_id);
        INSERT OR IGNORE INTO links (src, type, dst)
            WITH RECURSIVE split (memory_id, rest, id) AS (
                SELECT v.memory_id, substr(v.reason, 14) || ', ', '' FROM versions v
                WHERE v.event = 'retract' AND v.reason LIKE 'retracted by %'
                AND v.version = (SELECT max(w.version) FROM versions w WHERE w.memory_id = v.memory_id)
                UNION ALL
                SELECT memory_id, substr(rest, instr(rest, ', ') + 2), substr(rest, 1, instr(rest, ', ') - 1)
                FROM split WHERE rest != ''
            )
            SELECT id, 'retracts', memory_id FROM split WHERE id != '';
        """,
    ),
    (
        "0006_job_kinds",
        """
        ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'distill';
        """,
    ),
    (
        "0007_vitals",
        """
        ALTER TABLE records ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
        UPDATE records SET state = CASE (SELECT v.event FROM versions v WHERE v.memory_id = records.id
            ORDER BY v.version DESC LIMIT 1) WHEN 'retract' THEN 'retracted' ELSE 'superseded' END
            WHERE expired_at IS NOT NULL;
        CREATE INDEX records_archived ON records (user_id, content_hash) WHERE state = 'archived';
        CREATE TABLE vitals (
            memory_id TEXT PRIMARY KEY REFERENCES records (id) ON DELETE CASCADE,
            strength REAL NOT NULL DEFAULT 1,
            last_recall TEXT,
            recalls INTEGER NOT NULL DEFAULT 0,
            confirmations INTEGER NOT NULL DEFAULT 0,
            utility REAL NOT NULL DEFAULT 0,
            used INTEGER NOT NULL DEFAULT 0,
            unused INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        """,
    ),
    (
        "0008_erasure_receipts",
        """
        CREATE INDEX versions_erased ON versions (user_id, at, memory_id) WHERE event = 'delete';
        """,
    ),
    (
        "0009_notes",
        """
        ALTER TABLE links ADD COLUMN reason TEXT;
        ALTER TABLE links ADD COLUMN strength REAL;
        CREATE TABLE notes (
            memory_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            user_id TEXT NOT NULL,
            keywords TEXT NOT NULL DEFAULT '[]',
            tags TEXT NOT NULL DEFAULT '[]',
            context TEXT NOT NULL DEFAULT '',
            content_hash TEXT NOT NULL,
            made_by TEXT NOT NULL,
            causes TEXT NOT NULL DEFAULT '[]',
            reason TEXT,
            at TEXT NOT NULL,
            PRIMARY KEY (memory_id, version)
        ) WITHOUT ROWID;
        CREATE INDEX notes_user ON notes (user_id);
        CREATE TABLE note_queue (
            memory_id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            at TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX note_queue_user ON note_queue (user_id);
        """,
    ),
    (
        "0010_entity_graph",
        """
        CREATE TABLE graph_mentions (
            record_id TEXT PRIMARY KEY REFERENCES records (id) ON DELETE CASCADE,
            user_id TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            phrases TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX graph_mentions_user ON graph_mentions (user_id);
        """,
    ),
    (
        "0011_current_hashes",
        """
        CREATE INDEX records_current_hash ON records (user_id, content_hash) WHERE valid_to IS NULL;
        """,
    ),
]
