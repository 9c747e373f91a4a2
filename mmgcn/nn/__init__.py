"""Neural building blocks: sparse propagation, the modality GCN layer, fusion blocks, losses."""
