"""Rule sets kept signed and versioned beside the models: in a file of the data directory
(embedded) or in Redis (distributed), followed by every process that scores."""
