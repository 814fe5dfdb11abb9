"""Fine-tuning job records, registered by operators (``tollgate finetune create``)."""
