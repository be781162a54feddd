-- Canned texts per language (issue 19): agents pick a rejection reason or a photo
-- request, and each customer reads it in their own language. `text` stays what agents
-- read in the console (English, the console's language, unique within its kind);
-- `canned_reason_texts` holds it in each other language the desk speaks.
-- SQLite cannot change a table's UNIQUE constraint, so the table is made again; its ids
-- are never used twice (AUTOINCREMENT), as forms and API clients now send them: a page
-- open on a removed text must not pick the next one added.
CREATE TABLE canned_reasons_by_kind (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    kind  TEXT NOT NULL DEFAULT 'reject' CHECK (kind IN ('reject', 'photo')),
    text  TEXT NOT NULL,
    UNIQUE (kind, text)
);
INSERT INTO canned_reasons_by_kind (id, kind, text) SELECT id, 'reject', text FROM canned_reasons;
DROP TABLE canned_reasons;
ALTER TABLE canned_reasons_by_kind RENAME TO canned_reasons;

CREATE TABLE canned_reason_texts (
    reason_id  INTEGER NOT NULL REFERENCES canned_reasons (id) ON DELETE CASCADE,
    language   TEXT NOT NULL,
    text       TEXT NOT NULL,
    PRIMARY KEY (reason_id, language)
);

-- The reasons the desk was installed with, in Spanish.
INSERT INTO canned_reason_texts (reason_id, language, text)
SELECT id, 'es', CASE text
    WHEN 'The label photo does not show the same serial number as the export.'
        THEN 'La foto de la etiqueta no muestra el mismo número de serie que la exportación.'
    WHEN 'The label photo is unreadable.'
        THEN 'No se puede leer la foto de la etiqueta.'
    WHEN 'The device is registered to another owner.'
        THEN 'El dispositivo está registrado a nombre de otro propietario.'
    WHEN 'The export was made on a device we cannot verify.'
        THEN 'La exportación se hizo en un dispositivo que no podemos verificar.'
    END
FROM canned_reasons
WHERE text IN ('The label photo does not show the same serial number as the export.',
               'The label photo is unreadable.',
               'The device is registered to another owner.',
               'The export was made on a device we cannot verify.');

-- Photo requests agents send most, in both languages.
INSERT INTO canned_reasons (kind, text) VALUES
    ('photo', 'The photo is blurred: hold the phone still and tap the label to focus.'),
    ('photo', 'Light reflects on the label: turn the flash off or tilt the device a little.'),
    ('photo', 'Only part of the label is in the photo: show all of it, with the serial number.');
INSERT INTO canned_reason_texts (reason_id, language, text)
SELECT id, 'es', CASE text
    WHEN 'The photo is blurred: hold the phone still and tap the label to focus.'
        THEN 'La foto está borrosa: sujete el teléfono sin moverlo y toque la etiqueta para enfocar.'
    WHEN 'Light reflects on the label: turn the flash off or tilt the device a little.'
        THEN 'La luz se refleja en la etiqueta: apague el flash o incline un poco el dispositivo.'
    WHEN 'Only part of the label is in the photo: show all of it, with the serial number.'
        THEN 'En la foto solo aparece parte de la etiqueta: muéstrela entera, con el número de serie.'
    END
FROM canned_reasons WHERE kind = 'photo';
