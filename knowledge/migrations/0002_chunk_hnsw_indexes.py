from django.db import migrations

# One partial HNSW index per supported dimension over the vector cast to that size: the column itself has
# no fixed dimension (each chunk records its model's), and retrieval orders by the same expression.
DIMS = (384, 768, 1024, 1536)


def _create(dim: int) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS knowledge_chunk_hnsw_{dim} ON knowledge_chunk "
        f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
        f"WHERE embedding_dim = {dim}"
    )


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0001_knowledge_bases_documents_chunks")]

    operations = [
        migrations.RunSQL(_create(dim), reverse_sql=f"DROP INDEX IF EXISTS knowledge_chunk_hnsw_{dim}") for dim in DIMS
    ]
