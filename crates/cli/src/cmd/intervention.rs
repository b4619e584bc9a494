//! Training-free interventions as text (`eval predict --hook SPEC`, repeatable): the parser
//! (`HookArg`) and the hook-spec builder (`Intervention`) live in
//! [`sam3lab_steering::intervention`], which documents the forms; `eval predict` passes its `--hook`
//! arguments through to [`sam3lab_steering::predict::predict_to_file`].
